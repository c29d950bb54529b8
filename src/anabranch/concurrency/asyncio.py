"""``concurrency()`` and ``rate_limit()`` for async code: waiting never blocks the loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from anabranch.concurrency._broker import SlotBroker, SlotTicket, get_broker
from anabranch.concurrency._requests import as_names, new_request, settle, warn_if_unlimited
from anabranch.schemas import SlotGrant, SlotRequest


async def _acquire(
    broker: SlotBroker, request: SlotRequest, logger: object, timeout: float | None
) -> SlotGrant:
    """Wait on an asyncio future that the broker settles: no thread per waiter."""
    loop = asyncio.get_running_loop()
    settled: asyncio.Future[None] = loop.create_future()

    def mark_settled() -> None:
        if not settled.done():
            settled.set_result(None)

    def on_done(_ticket: SlotTicket) -> None:
        loop.call_soon_threadsafe(mark_settled)

    ticket = await asyncio.to_thread(broker.request, request, on_done, logger)
    try:
        await asyncio.wait_for(asyncio.shield(settled), timeout)
    except asyncio.TimeoutError:
        pass
    except asyncio.CancelledError:
        late = await asyncio.to_thread(broker.cancel, ticket)
        if late is not None:
            await asyncio.to_thread(broker.release, late.lease_id)
        raise
    return settle(broker, ticket, ticket.wait(0), timeout)


@contextlib.asynccontextmanager
async def concurrency(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = True,
) -> AsyncIterator[None]:
    """The async form of ``anabranch.concurrency.sync.concurrency``."""
    listed = as_names(names)
    request, logger = new_request(listed, occupy, strict)
    broker = get_broker()
    grant = await _acquire(broker, request, logger, timeout_seconds)
    if not strict:
        warn_if_unlimited(listed, grant, logger)
    try:
        yield
    finally:
        await asyncio.to_thread(broker.release, grant.lease_id)


async def rate_limit(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = True,
) -> None:
    """The async form of ``anabranch.concurrency.sync.rate_limit``."""
    listed = as_names(names)
    request, logger = new_request(listed, occupy, strict, mode="rate")
    grant = await _acquire(get_broker(), request, logger, timeout_seconds)
    if not strict:
        warn_if_unlimited(listed, grant, logger)
