"""Live pages: one watcher per server looks at the store for runs written since its last
look (by this server or any other process sharing the database) and tells every open page,
over Server-Sent Events, which runs changed; each page fetches again only the parts that
show one of them.

The watcher looks twice a second while a page is open and not at all otherwise. It reads
a few seconds back each time, because writers on other hosts stamp rows with their own
clocks, and sends a run again only when its stamp changed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import anyio
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent

from anabranch import _clock
from anabranch.client.embedded import EmbeddedClient
from anabranch.orchestration.summaries import MAX_CHANGES

LOOK_SECONDS = 0.5
LOOK_BACK = timedelta(seconds=5)
KEEPALIVE_SECONDS = 15.0
# A page told about more runs than this at once just looks at everything again.
MAX_NAMED = 200

router = APIRouter()


class RunWatcher:
    """Finds the runs that changed and fans them out to the open pages' queues."""

    def __init__(self, store: EmbeddedClient) -> None:
        self._store = store
        self._pages: set[asyncio.Queue[frozenset[str]]] = set()
        self._someone = asyncio.Event()
        self._seen: dict[uuid.UUID, datetime] = {}
        self._cursor = _clock.now()

    def subscribe(self) -> asyncio.Queue[frozenset[str]]:
        queue: asyncio.Queue[frozenset[str]] = asyncio.Queue(maxsize=20)
        self._pages.add(queue)
        self._someone.set()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[frozenset[str]]) -> None:
        self._pages.discard(queue)
        if not self._pages:
            self._someone = asyncio.Event()

    async def run(self) -> None:
        """The watcher's loop, for the app's task group."""
        while True:
            await self._someone.wait()
            try:
                topics = await run_in_threadpool(self._look)
            except Exception:
                topics = frozenset()  # the store is away: look again next time
            if topics:
                for queue in list(self._pages):
                    if queue.full():
                        queue.get_nowait()
                    queue.put_nowait(topics)
            await anyio.sleep(LOOK_SECONDS)

    def _look(self) -> frozenset[str]:
        """The topics to announce: ``runs`` when anything changed, ``run-<id>`` for each
        changed flow run and its parent, or ``everything`` when too many changed."""
        changes = self._store.read_run_changes(since=self._cursor - LOOK_BACK)
        fresh = [c for c in changes if self._seen.get(c.flow_run_id) != c.updated]
        for change in changes:
            self._seen[change.flow_run_id] = change.updated
            self._cursor = max(self._cursor, change.updated)
        horizon = self._cursor - LOOK_BACK
        self._seen = {run_id: at for run_id, at in self._seen.items() if at >= horizon}
        if not fresh:
            return frozenset()
        names = {f"run-{c.flow_run_id}" for c in fresh}
        names |= {f"run-{c.parent_flow_run_id}" for c in fresh if c.parent_flow_run_id}
        if len(names) > MAX_NAMED or len(fresh) >= MAX_CHANGES:
            # Too many to name, or more changed than one look reads: every page looks again.
            return frozenset({"runs", "everything"})
        return frozenset({"runs", *names})


@router.get("/live", response_class=EventSourceResponse, include_in_schema=False)
async def live(request: Request) -> AsyncIterator[ServerSentEvent]:
    """The stream an open page listens to: one event per changed topic."""
    watcher: RunWatcher = request.app.state.run_watcher
    queue = watcher.subscribe()
    try:
        yield ServerSentEvent(comment="listening", retry=2000)
        while True:
            with anyio.move_on_after(KEEPALIVE_SECONDS):
                topics = await queue.get()
                for topic in sorted(topics):
                    yield ServerSentEvent(event=topic, raw_data="")
                continue
            yield ServerSentEvent(comment="keepalive")
    finally:
        watcher.unsubscribe(queue)
