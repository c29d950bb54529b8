"""The async client: the same operations, awaited (``async with get_client() as client:``,
as in Prefect 3). A third dispatcher over the declarations, not a copy of the others: on
the embedded store it runs the sync client's call in a worker thread; over HTTP
(``AsyncHTTPClient`` in ``client.http``) it sends the requests the sync client sends.
"""

from __future__ import annotations

import contextvars
import functools
from typing import Any

import anyio

from anabranch.operations import OPERATIONS, Operation


def _awaited(operation: Operation) -> Any:
    async def call(self: AsyncStoreOperations, *args: Any, **kwargs: Any) -> Any:
        return await self._acall(operation, operation.bind(args, kwargs))

    functools.update_wrapper(call, operation.stub)
    call.operation = operation  # type: ignore[attr-defined]
    return call


class AsyncStoreOperations:
    """Every operation of ``StoreOperations``, as a coroutine method of the same name,
    parameters and documentation."""

    async def _acall(self, operation: Operation, arguments: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release what the client holds; it can not be used afterwards."""


for _operation in OPERATIONS:
    setattr(AsyncStoreOperations, _operation.name, _awaited(_operation))


class AsyncEmbeddedClient(AsyncStoreOperations):
    """The embedded store, awaited: each call runs in a worker thread, so the event loop
    never waits on the database."""

    def __init__(self, sync_client: Any) -> None:
        self.sync_client = sync_client

    def __repr__(self) -> str:
        return f"Async{self.sync_client!r}"

    async def _acall(self, operation: Operation, arguments: dict[str, Any]) -> Any:
        call = functools.partial(self.sync_client._call, operation, arguments)
        return await anyio.to_thread.run_sync(call)


_entered: contextvars.ContextVar[tuple[AsyncStoreOperations, ...]] = contextvars.ContextVar(
    "anabranch_async_clients", default=()
)


class OpensAsync:
    """``async with get_client() as client:`` on a sync client gives the async client for
    the same store (Prefect 3's usage), closed when the block ends."""

    def async_client(self) -> AsyncStoreOperations:
        """A new async client for this client's store."""
        raise NotImplementedError

    async def __aenter__(self) -> Any:
        client = self.async_client()
        _entered.set((*_entered.get(), client))
        return client

    async def __aexit__(self, *exc_info: Any) -> None:
        *outer, client = _entered.get()
        _entered.set(tuple(outer))
        await client.aclose()
