"""Long polls without a thread each: the server's waiters are asyncio events, woken by the
store's change notifications (from whatever thread wrote), with a slow fallback look at the
database for changes another server replica made."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import anyio
from fastapi.concurrency import run_in_threadpool

from anabranch.client._changes import changes
from anabranch.client.embedded import EmbeddedClient
from anabranch.operations.deployments import MAX_WAIT_SECONDS
from anabranch.schemas import FlowRun
from anabranch.schemas.deployments import WorkerPoll, WorkerPollAnswer

# How often a long poll looks at the database when no change in this server woke it.
FALLBACK_LOOK_SECONDS = 0.5


class ChangeFeed:
    """Built in the app's lifespan, on its event loop."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._work = asyncio.Event()
        self._ended: dict[uuid.UUID, asyncio.Event] = {}
        self._unsubscribe: Callable[[], None] = changes.subscribe(self._notify)

    def close(self) -> None:
        self._unsubscribe()

    async def work(self, timeout: float) -> None:
        """Return when something a worker may act on changed, or after ``timeout``."""
        with anyio.move_on_after(timeout):
            await self._work.wait()

    async def ended(self, run_id: uuid.UUID, timeout: float) -> None:
        """Return when the flow run may have ended, or after ``timeout``."""
        event = self._ended.setdefault(run_id, asyncio.Event())
        with anyio.move_on_after(timeout):
            await event.wait()
        if not event.is_set() and self._ended.get(run_id) is event:
            del self._ended[run_id]

    def _notify(self, ended: frozenset[uuid.UUID], work: bool) -> None:
        # Called from the writing thread; events belong to the loop.
        if ended or work:
            self._loop.call_soon_threadsafe(self._wake, ended, work)

    def _wake(self, ended: frozenset[uuid.UUID], work: bool) -> None:
        if work:
            self._work.set()
            self._work = asyncio.Event()
        for run_id in ended:
            event = self._ended.pop(run_id, None)
            if event is not None:
                event.set()


async def long_poll_work(
    store: EmbeddedClient, feed: ChangeFeed, work_pool_name: str | None, poll: WorkerPoll
) -> WorkerPollAnswer:
    """A worker's poll, held until there is something for it: each change in this server
    wakes it, and it looks at the database now and then for changes other replicas made."""
    deadline = anyio.current_time() + min(poll.wait, MAX_WAIT_SECONDS)
    answer = await run_in_threadpool(store.take_runs, work_pool_name, poll)
    while not (answer.runs or answer.cancelling):
        remaining = deadline - anyio.current_time()
        if remaining <= 0:
            break
        await feed.work(min(remaining, FALLBACK_LOOK_SECONDS))
        if await run_in_threadpool(store.has_work, work_pool_name, poll):
            answer = await run_in_threadpool(store.take_runs, work_pool_name, poll)
    return answer


async def wait_for_flow_run(
    store: EmbeddedClient, feed: ChangeFeed, flow_run_id: uuid.UUID, timeout: float
) -> FlowRun:
    """The run once it is final, or as it is after ``timeout`` seconds: woken by the end of
    the run in this server, looking at the database now and then for other replicas'."""
    deadline = anyio.current_time() + min(timeout, MAX_WAIT_SECONDS)
    while True:
        run = await run_in_threadpool(store.read_flow_run, flow_run_id)
        remaining = deadline - anyio.current_time()
        if (run.state is not None and run.state.is_final()) or remaining <= 0:
            return run
        await feed.ended(flow_run_id, min(remaining, FALLBACK_LOOK_SECONDS))
