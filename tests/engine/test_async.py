"""Async flows and tasks: awaiting them, running them concurrently, and return_state."""

from __future__ import annotations

import asyncio
import threading

import pytest

from anabranch import State, flow, get_run_logger, task
from anabranch.schemas import StateType
from anabranch.utilities.asyncutils import gather

# Every wait below is bounded: if the engine ran the "concurrent" runs one after another, a
# handshake would never complete, and the test fails after this long instead of hanging.
HANDSHAKE_TIMEOUT = 10


@task
async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@task
def sync_increment(x: int) -> int:
    return x + 1


def test_an_async_flow_returns_a_coroutine_that_runs_and_records_the_flow(client):
    @flow
    async def compute(x: int) -> int:
        await asyncio.sleep(0)
        return x * 10

    coroutine = compute(4)
    assert asyncio.iscoroutine(coroutine)
    assert asyncio.run(coroutine) == 40

    (run,) = client.read_flow_runs()
    assert run.flow_name == "compute"
    assert run.state.type is StateType.COMPLETED
    assert [r.state.name for r in client.read_states(run.id)] == ["Pending", "Running", "Completed"]


def test_an_async_flow_awaits_async_tasks_sync_tasks_and_async_subflows(client):
    @flow
    async def child(x: int) -> int:
        return await async_double(x)

    @flow
    async def parent(x: int) -> int:
        doubled = await async_double(x)
        incremented = sync_increment(doubled)
        return await child(incremented)

    assert asyncio.run(parent(3)) == 14

    (root,) = client.read_flow_runs(flow_name="parent")
    (sub,) = client.read_flow_runs(parent_flow_run_id=root.id)
    assert sub.flow_name == "child" and sub.state.type is StateType.COMPLETED
    assert sorted(r.name for r in client.read_task_runs(flow_run_id=root.id)) == [
        "async_double-0",
        "sync_increment-0",
    ]
    (child_task,) = client.read_task_runs(flow_run_id=sub.id)
    assert child_task.name == "async_double-0"
    assert child_task.parameters == {"x": 7}


def test_asyncio_gather_runs_async_subflows_concurrently(client):
    @flow
    async def waits_for_signal(signal: asyncio.Event) -> str:
        await signal.wait()
        return "waited"

    @flow
    async def sends_signal(signal: asyncio.Event) -> str:
        signal.set()
        return "sent"

    @flow
    async def parent() -> list[str]:
        signal = asyncio.Event()
        # Sequentially, waits_for_signal would wait forever for a signal never sent.
        results = await asyncio.wait_for(
            asyncio.gather(waits_for_signal(signal), sends_signal(signal)),
            timeout=HANDSHAKE_TIMEOUT,
        )
        return list(results)

    assert asyncio.run(parent()) == ["waited", "sent"]

    (root,) = client.read_flow_runs(flow_name="parent")
    children = client.read_flow_runs(parent_flow_run_id=root.id)
    assert sorted(c.flow_name for c in children) == ["sends-signal", "waits-for-signal"]
    assert all(c.state.type is StateType.COMPLETED for c in children)


def test_asyncio_gather_runs_async_tasks_concurrently_each_in_its_own_task_run(client):
    @task
    async def waits_for_signal(signal: asyncio.Event) -> str:
        get_run_logger().info("waiting")
        await signal.wait()
        return "waited"

    @task
    async def sends_signal(signal: asyncio.Event) -> str:
        get_run_logger().info("sending")
        signal.set()
        return "sent"

    @flow
    async def parent() -> list[str]:
        signal = asyncio.Event()
        results = await asyncio.wait_for(
            asyncio.gather(waits_for_signal(signal), sends_signal(signal)),
            timeout=HANDSHAKE_TIMEOUT,
        )
        return list(results)

    assert asyncio.run(parent()) == ["waited", "sent"]

    (root,) = client.read_flow_runs()
    lines = {
        run.name: [line.message for line in client.read_logs(task_run_id=run.id)]
        for run in client.read_task_runs(flow_run_id=root.id)
    }
    assert lines == {"waits_for_signal-0": ["waiting"], "sends_signal-0": ["sending"]}


def test_gather_helper_runs_sync_child_flows_concurrently_and_returns_results_in_order(client):
    all_started = threading.Barrier(3, timeout=HANDSHAKE_TIMEOUT)
    third_finished = threading.Event()

    @flow
    def child_flow(x: int) -> int:
        all_started.wait()  # breaks (BrokenBarrierError) unless the three overlap
        if x == 1:
            # Finish last, so an in-order result list is not just completion order.
            assert third_finished.wait(HANDSHAKE_TIMEOUT)
        if x == 3:
            third_finished.set()
        return x * 2

    @flow
    async def parent_flow() -> list[int]:
        r1, r2, r3 = await gather(
            lambda: child_flow(1),
            lambda: child_flow(2),
            lambda: child_flow(3),
        )
        return [r1, r2, r3]

    assert asyncio.run(parent_flow()) == [2, 4, 6]

    (root,) = client.read_flow_runs(flow_name="parent-flow")
    children = client.read_flow_runs(parent_flow_run_id=root.id)
    assert sorted(c.parameters["x"] for c in children) == [1, 2, 3]
    assert all(c.state.type is StateType.COMPLETED for c in children)


def test_gather_helper_awaits_coroutine_functions_and_returned_awaitables():
    async def direct() -> str:
        return "direct"

    async def main() -> list[str]:
        return await gather(direct, lambda: asyncio.sleep(0, result="returned"), lambda: "plain")

    assert asyncio.run(main()) == ["direct", "returned", "plain"]


def test_async_tasks_submitted_from_a_sync_flow_run_concurrently(client):
    all_started = threading.Barrier(3, timeout=HANDSHAKE_TIMEOUT)

    @task
    async def meet(x: int) -> int:
        # Each submitted async task runs on its own event loop in a worker thread, so a
        # blocking barrier here only proves the three runs overlap.
        all_started.wait()
        await asyncio.sleep(0)
        return x + 100

    @flow
    def parent() -> list[int]:
        futures = [meet.submit(i) for i in range(3)]
        return [f.result(timeout=HANDSHAKE_TIMEOUT) for f in futures]

    assert parent() == [100, 101, 102]

    (root,) = client.read_flow_runs()
    task_runs = client.read_task_runs(flow_run_id=root.id)
    assert sorted(r.name for r in task_runs) == ["meet-0", "meet-1", "meet-2"]
    assert all(r.state.type is StateType.COMPLETED for r in task_runs)


def test_async_subflows_submitted_from_a_sync_flow_run_concurrently(client):
    signal = threading.Event()

    @flow
    async def waits(tag: str) -> str:
        assert await asyncio.to_thread(signal.wait, HANDSHAKE_TIMEOUT)
        return tag

    @flow
    async def sends(tag: str) -> str:
        signal.set()
        return tag

    @flow
    def parent() -> list[str]:
        first, second = waits.submit("a"), sends.submit("b")
        return [first.result(timeout=HANDSHAKE_TIMEOUT), second.result(timeout=HANDSHAKE_TIMEOUT)]

    assert parent() == ["a", "b"]
    (root,) = client.read_flow_runs(flow_name="parent")
    assert len(client.read_flow_runs(parent_flow_run_id=root.id)) == 2


def test_return_state_on_an_async_flow_returns_the_final_state_without_raising(client):
    @flow
    async def broken() -> None:
        await asyncio.sleep(0)
        raise ValueError("async boom")

    state = asyncio.run(broken(return_state=True))

    assert isinstance(state, State)
    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), ValueError)
    with pytest.raises(ValueError, match="async boom"):
        state.result()
    (run,) = client.read_flow_runs()
    assert run.state.type is StateType.FAILED


def test_awaiting_a_failing_async_flow_raises_its_exception():
    @flow
    async def broken() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        asyncio.run(broken())


def test_return_state_on_async_tasks_returns_completed_and_failed_states(client):
    @task
    async def explode() -> None:
        raise RuntimeError("task boom")

    @flow
    async def parent() -> dict[str, State]:
        good = await async_double(5, return_state=True)
        bad = await explode(return_state=True)
        # Returned states would decide the flow's own state, so hand them back in a dict.
        return {"good": good, "bad": bad}

    states = asyncio.run(parent())
    good, bad = states["good"], states["bad"]

    assert good.is_completed() and good.result() == 10
    assert bad.is_failed()
    assert isinstance(bad.result(raise_on_failure=False), RuntimeError)
    (root,) = client.read_flow_runs()
    assert root.state.type is StateType.COMPLETED  # the parent handled the failed state
    states = {r.name: r.state.type for r in client.read_task_runs(flow_run_id=root.id)}
    assert states == {"async_double-0": StateType.COMPLETED, "explode-0": StateType.FAILED}
