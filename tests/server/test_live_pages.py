"""The web UI's live feed: the watcher tells open pages which runs changed, whoever wrote
them, and keeps doing so after a burst of more runs than one look reads."""

from __future__ import annotations

import asyncio
from pathlib import Path

from anabranch.client.embedded import EmbeddedClient
from anabranch.orchestration.summaries import MAX_CHANGES
from anabranch.schemas import FlowRun, RecordBatch, State, StateType
from anabranch.server.ui.live import RunWatcher

RUNNING = State(type=StateType.RUNNING, name="Running")


def test_pages_hear_of_each_run_written_even_after_a_burst_too_big_to_name(
    tmp_path: Path,
) -> None:
    store = EmbeddedClient(f"sqlite:///{tmp_path / 'live.db'}")

    async def scenario() -> None:
        watcher = RunWatcher(store)
        page = watcher.subscribe()
        watching = asyncio.create_task(watcher.run())
        try:
            parent = FlowRun(name="parent", flow_name="p", state=RUNNING)
            store.write_batch(RecordBatch(flow_runs=[parent]))
            topics = await asyncio.wait_for(page.get(), 10)
            assert {"runs", f"run-{parent.id}"} <= topics

            burst = [FlowRun(name=f"c{i}", flow_name="c", state=RUNNING,
                             parent_flow_run_id=parent.id) for i in range(MAX_CHANGES + 100)]
            store.write_batch(RecordBatch(flow_runs=burst))
            assert "everything" in await asyncio.wait_for(page.get(), 10)

            late = FlowRun(name="late", flow_name="p", state=RUNNING)
            store.write_batch(RecordBatch(flow_runs=[late]))
            topics = await asyncio.wait_for(page.get(), 10)
            while f"run-{late.id}" not in topics:
                assert "everything" not in topics, "the burst was announced again"
                topics = await asyncio.wait_for(page.get(), 10)
        finally:
            watching.cancel()
            watcher.unsubscribe(page)

    asyncio.run(scenario())
