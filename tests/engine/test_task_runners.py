"""Task runners: max_workers is a hard cap, the default is bounded, waiting never deadlocks,
and process pools run task bodies (and subflows inside them) in child processes."""

from __future__ import annotations

import os
import threading
from collections import defaultdict

import pytest

from anabranch import flow, get_run_context, get_run_logger, task
from anabranch.task_runners import (
    ProcessPoolTaskRunner,
    ThreadPoolTaskRunner,
    default_max_workers,
)


def peak_overlap(intervals) -> int:
    """The largest number of [start, end] intervals open at the same moment."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda e: (e[0], e[1]))
    peak = current = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def test_recorded_child_flow_runs_never_exceed_max_workers(client):
    workers = 5
    batch_together = threading.Barrier(workers, timeout=20)

    @flow
    def child(i: int) -> int:
        batch_together.wait()
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=workers))
    def parent() -> list:
        return child.map(range(20)).result()

    assert parent() == list(range(20))
    children = [r for r in client.read_flow_runs() if r.flow_name == "child"]
    assert len(children) == 20
    assert peak_overlap([(r.start_time, r.end_time) for r in children]) == workers


def test_submitted_tasks_never_exceed_max_workers(client):
    workers = 3
    together = threading.Barrier(workers, timeout=20)

    @task
    def step(i: int) -> int:
        together.wait()
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=workers))
    def parent() -> list:
        return step.map(range(12)).result()

    parent()
    (run,) = client.read_flow_runs()
    task_runs = client.read_task_runs(flow_run_id=run.id)
    assert peak_overlap([(t.start_time, t.end_time) for t in task_runs]) == workers


def test_the_default_runner_is_bounded():
    runner = ThreadPoolTaskRunner()
    assert runner.max_workers == default_max_workers() <= 32
    with pytest.raises(ValueError, match="at least 1"):
        ThreadPoolTaskRunner(max_workers=0)


class ExecutionMeter:
    """Counts task bodies executing at once per flow run (waiting on futures excluded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[object, int] = defaultdict(int)
        self.peak: dict[object, int] = defaultdict(int)

    def enter(self, key):
        with self._lock:
            self._current[key] += 1
            self.peak[key] = max(self.peak[key], self._current[key])

    def leave(self, key):
        with self._lock:
            self._current[key] -= 1


@pytest.mark.parametrize("workers", [1, 2])
def test_three_level_fan_out_completes_under_a_small_cap_without_deadlock(workers):
    meter = ExecutionMeter()

    def busy() -> object:
        key = get_run_context().task_run.flow_run_id
        meter.enter(key)
        return key

    @task
    def leaf(x: int) -> int:
        key = busy()
        meter.leave(key)
        return x

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=workers))
    def sub(x: int) -> int:
        return sum(f.result() for f in [leaf.submit(x + i) for i in range(3)])

    @task
    def middle(x: int) -> int:
        key = busy()
        futures = [leaf.submit(x * 10 + i) for i in range(3)]
        meter.leave(key)
        waited = sum(f.result() for f in futures)
        meter.enter(key)
        meter.leave(key)
        return waited + sub(x)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=workers))
    def top() -> list:
        return [f.result() for f in [middle.submit(i) for i in range(4)]]

    outcome: dict[str, object] = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("value", top()), daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "the fan-out deadlocked"
    assert outcome["value"] == [(30 * i + 3) + (3 * i + 3) for i in range(4)]
    assert max(meter.peak.values()) <= workers


def test_statistics_show_cap_threads_and_queue():
    seen: dict[str, int] = {}
    release = threading.Event()

    @task
    def hold() -> None:
        release.wait(10)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def observed() -> None:
        futures = [hold.submit() for _ in range(5)]
        seen.update(get_run_context().task_runner.statistics())
        release.set()
        for f in futures:
            f.wait()

    observed()
    assert seen["max_workers"] == 2
    assert seen["threads"] <= 2
    assert seen["executing"] + seen["queued"] <= 5


@flow
def doubled_in_child(x: int) -> int:
    get_run_logger().info("subflow in pid %s", os.getpid())
    return x * 2


@task
def call_subflow(x: int) -> tuple:
    get_run_logger().info("task in pid %s", os.getpid())
    return os.getpid(), doubled_in_child(x)


@flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
def process_parent() -> list:
    return [f.result() for f in [call_subflow.submit(i) for i in range(4)]]


def test_process_pool_runs_tasks_and_their_subflows_in_child_processes(client):
    results = process_parent()
    assert [value for _, value in results] == [0, 2, 4, 6]
    assert all(pid != os.getpid() for pid, _ in results)

    runs = client.read_flow_runs()
    (root,) = [r for r in runs if r.flow_name == "process-parent"]
    task_runs = client.read_task_runs(flow_run_id=root.id)
    assert len(task_runs) == 4
    for task_run in task_runs:
        assert task_run.state.is_completed()
        assert task_run.start_time <= task_run.end_time
        assert [r.state.name for r in client.read_states(task_run.id)] == [
            "Pending", "Running", "Completed"
        ]
        logs = client.read_logs(task_run_id=task_run.id)
        assert any("task in pid" in log.message for log in logs)
    subflows = [r for r in runs if r.flow_name == "doubled-in-child"]
    assert len(subflows) == 4
    assert {r.parent_task_run_id for r in subflows} == {t.id for t in task_runs}
    assert all(r.parent_flow_run_id == root.id and r.state.is_completed() for r in subflows)


@task
def fails_in_child() -> None:
    raise RuntimeError("child process failure")


@flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
def process_failure() -> str:
    future = fails_in_child.submit()
    with pytest.raises(RuntimeError, match="child process failure"):
        future.result()
    return future.state.name


def test_a_task_failing_in_a_child_process_fails_with_its_exception():
    assert process_failure() == "Failed"
