"""``gather``: run zero-argument callables concurrently and return their results in order."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any


async def gather(*calls: Callable[[], Any]) -> list[Any]:
    """Run each callable concurrently: a plain call runs in a worker thread (so a sync subflow
    does not block the others); an awaitable it returns is awaited on this loop."""

    async def run(call: Callable[[], Any]) -> Any:
        if inspect.iscoroutinefunction(call):
            return await call()
        value = await asyncio.to_thread(call)
        if inspect.isawaitable(value):
            return await value
        return value

    return list(await asyncio.gather(*(run(call) for call in calls)))
