"""The Python snippets of the two seed documents, run as users wrote them.

Each snippet lives verbatim (``prefect`` replaced by ``anabranch``) in ``snippets/``. Snippets
without a ``__main__`` block run in this process with runpy; the seed-004 scripts run as real
scripts in a subprocess on this test's ANABRANCH_HOME. Snippets that need a concurrency limit
get it from the real console script first (the seed's `prefect concurrency-limit create NAME N`
becomes `anabranch concurrency-limit create NAME N`). The snippets that call run_deployment
run against deployed children and real workers in tests/workers/test_seed_deployments.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import runpy
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from anabranch import flow, task
from anabranch.concurrency.sync import concurrency
from anabranch.schemas import FlowRun, StateType, TaskRun
from anabranch.task_runners import ThreadPoolTaskRunner
from server_harness import ANABRANCH

SNIPPETS = Path(__file__).parent / "snippets"


def run_snippet(name: str | Path, **given: Any) -> dict[str, Any]:
    """Execute a snippet in this process and return its globals (its flows and tasks);
    ``given`` supplies what a fragment uses but the seed defines elsewhere (``flow``,
    ``child_flow``, ``write_to_file``)."""
    return runpy.run_path(str(SNIPPETS / name), init_globals=given)


def create_limit(name: str, limit: int) -> None:
    """`anabranch concurrency-limit create NAME LIMIT`, as the seed says to run it, on this
    test's store (the console script inherits ANABRANCH_HOME)."""
    result = subprocess.run(
        [ANABRANCH, "concurrency-limit", "create", name, str(limit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def run_script(path: Path, home: Path, random_value: float) -> subprocess.CompletedProcess:
    """Run ``path`` as ``python path`` would, with ``random.random()`` answering
    ``random_value`` so the seed's coin flip comes out the way the test needs."""
    runner = (
        "import random, runpy, sys\n"
        "random.random = lambda: float(sys.argv[2])\n"
        "runpy.run_path(sys.argv[1], run_name='__main__')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", runner, str(path), str(random_value)],
        env={**os.environ, "ANABRANCH_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def the_only(runs: list[Any]) -> Any:
    assert len(runs) == 1, runs
    return runs[0]


def max_overlap(runs: list[TaskRun] | list[FlowRun]) -> int:
    """The most runs that were executing at the same moment, from their recorded times."""
    events: list[tuple[datetime, int]] = []
    for run in runs:
        assert run.start_time is not None and run.end_time is not None
        events += [(run.start_time, 1), (run.end_time, -1)]
    busy = peak = 0
    for _, step in sorted(events):  # at equal times an end (-1) sorts before a start
        busy += step
        peak = max(peak, busy)
    return peak


def assert_children_of_submitted_tasks(client, parent: FlowRun, count: int) -> list[FlowRun]:
    """``count`` completed child runs, each linked to the parent and to its own task run."""
    children = client.read_flow_runs(parent_flow_run_id=parent.id)
    task_runs = client.read_task_runs(flow_run_id=parent.id)
    assert len(children) == len(task_runs) == count
    assert all(child.state.type is StateType.COMPLETED for child in children)
    assert all(run.state.type is StateType.COMPLETED for run in task_runs)
    assert {child.parent_task_run_id for child in children} == {run.id for run in task_runs}
    return children


# --- seed 000: running subflows concurrently -----------------------------------------------


def test_subflows_called_in_submitted_tasks_run_as_five_linked_child_runs(client):
    ns = run_snippet("seed000_subflows_in_submitted_tasks.py")

    assert ns["parent_flow"]() == [0, 2, 4, 6, 8]

    parent = the_only(client.read_flow_runs(flow_name="parent-flow"))
    assert parent.state.type is StateType.COMPLETED
    children = assert_children_of_submitted_tasks(client, parent, 5)
    assert sorted(child.parameters["x"] for child in children) == [0, 1, 2, 3, 4]
    assert {child.flow_name for child in children} == {"child-flow"}


def test_async_parent_gathers_three_sync_subflows_and_returns_their_results(client):
    ns = run_snippet("seed000_async_parent_gather.py")

    assert asyncio.run(ns["parent_flow"]()) == [2, 4, 6]

    parent = the_only(client.read_flow_runs(flow_name="parent-flow"))
    children = client.read_flow_runs(parent_flow_run_id=parent.id)
    assert sorted(child.parameters["x"] for child in children) == [1, 2, 3]
    assert all(child.state.type is StateType.COMPLETED for child in children)


def test_option_a_runs_a_hundred_subflows_never_more_than_ten_at_once(client):
    ns = run_snippet("seed000_option_a_max_workers.py")

    assert ns["parent_flow"]() == [2 * i for i in range(100)]

    parent = the_only(client.read_flow_runs(flow_name="parent-flow"))
    assert_children_of_submitted_tasks(client, parent, 100)
    assert max_overlap(client.read_task_runs(flow_run_id=parent.id)) <= 10


def test_option_b_tags_every_wrapper_task_run_without_a_limit_configured(client):
    ns = run_snippet("seed000_option_b_tagged_task.py")

    assert ns["parent_flow"]() == [2 * i for i in range(100)]

    parent = the_only(client.read_flow_runs(flow_name="parent-flow"))
    assert_children_of_submitted_tasks(client, parent, 100)
    task_runs = client.read_task_runs(flow_run_id=parent.id)
    assert all(run.tags == ["child-subflow"] for run in task_runs)


def test_nested_subflows_without_persisted_results_fan_out_a_hundred_children(client):
    ns = run_snippet("seed000_nested_subflows_fan_out.py")

    assert ns["parent_flow"]() == [None] * 100

    parent = the_only(client.read_flow_runs(flow_name="parent-flow"))
    children = assert_children_of_submitted_tasks(client, parent, 100)
    grandchildren = client.read_flow_runs(flow_name="grandchild-flow")
    assert len(grandchildren) == 100
    assert {g.parent_flow_run_id for g in grandchildren} == {c.id for c in children}
    # persist_result=False: nothing was written for the children or grandchildren.
    assert all(run.state.result_ref is None for run in children + grandchildren)
    assert parent.state.result_ref is not None


def test_leaf_tasks_replace_a_nested_subflow_inside_the_child(client):
    ns = run_snippet("seed000_leaf_tasks_instead_of_subflows.py")

    assert ns["child_flow"](3) == [None, None, None]

    child = the_only(client.read_flow_runs(flow_name="child-flow"))
    leaves = client.read_task_runs(flow_run_id=child.id)
    assert sorted(run.name for run in leaves) == ["leaf_step-0", "leaf_step-1", "leaf_step-2"]
    assert client.read_flow_runs(parent_flow_run_id=child.id) == []


def test_sequential_children_under_a_ten_worker_parent_record_fifty_subflows(client):
    ns = run_snippet("seed000_sequential_children_parallel_parent.py")

    assert ns["parent_flow"]() == [None] * 50

    parent = the_only(client.read_flow_runs(flow_name="parent-flow"))
    children = assert_children_of_submitted_tasks(client, parent, 50)
    assert sorted(child.parameters["i"] for child in children) == list(range(50))
    assert max_overlap(client.read_task_runs(flow_run_id=parent.id)) <= 10


def test_balanced_runner_flows_with_empty_bodies_complete(client):
    ns = run_snippet("seed000_balanced_runners.py")

    assert ns["parent_flow"]() is None
    assert ns["child_flow"](1) is None

    assert ns["parent_flow"].task_runner.max_workers == 5
    assert ns["child_flow"].task_runner.max_workers == 2
    runs = client.read_flow_runs()
    assert sorted(run.flow_name for run in runs) == ["child-flow", "parent-flow"]
    assert all(run.state.type is StateType.COMPLETED for run in runs)


# --- seed 000: named concurrency limits ----------------------------------------------------


class Occupancy:
    """How many callers were inside ``during()`` at once, at most."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.inside = self.peak = self.entries = 0

    @contextmanager
    def during(self) -> Iterator[None]:
        with self._lock:
            self.inside += 1
            self.entries += 1
            self.peak = max(self.peak, self.inside)
        try:
            time.sleep(0.002)  # a slow critical section: without the limit, callers overlap
            yield
        finally:
            with self._lock:
                self.inside -= 1


def waiting_messages(client, runs: list[TaskRun] | list[FlowRun]) -> list[str]:
    """The messages of the Pending states the runs went through while waiting for slots."""
    return [
        record.state.message
        for run in runs
        for record in client.read_states(run.id)
        if record.state.type is StateType.PENDING and record.state.message
    ]


@contextmanager
def full_until_someone_waits(client, name: str, slots: int) -> Iterator[None]:
    """Another holder takes every slot of ``name`` and gives them back as soon as a run
    waits for them: the runs started in the block deterministically meet a full limit."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with concurrency(name, occupy=slots):
            taken.set()
            while not done.is_set() and client.read_concurrency_limit(name).waiting == 0:
                done.wait(0.005)

    holder = threading.Thread(target=hold, name="other-holder")
    holder.start()
    try:
        assert taken.wait(30)
        yield
    finally:
        done.set()
        holder.join(30)


def test_option_b_limit_of_ten_caps_the_tagged_wrapper_tasks(client):
    create_limit("child-subflow", 10)
    ns = run_snippet("seed000_option_b_tagged_task.py")

    assert ns["parent_flow"]() == [2 * i for i in range(100)]

    parent = the_only(client.read_flow_runs(flow_name="parent-flow"))
    assert_children_of_submitted_tasks(client, parent, 100)
    assert max_overlap(client.read_task_runs(flow_run_id=parent.id)) <= 10
    assert client.read_concurrency_limit("child-subflow").active_slots == 0


def test_option_b_wrappers_wait_pending_while_the_limit_is_full(client):
    create_limit("child-subflow", 10)
    ns = run_snippet("seed000_option_b_tagged_task.py")

    with full_until_someone_waits(client, "child-subflow", 10):
        assert ns["parent_flow"]() == [2 * i for i in range(100)]

    task_runs = client.read_task_runs()
    assert len(task_runs) == 100
    assert max_overlap(task_runs) <= 10
    waited = waiting_messages(client, task_runs)
    assert "Waiting for concurrency limit 'child-subflow' (10/10 slots in use)" in waited


def test_option_b_limit_caps_the_tagged_tasks_even_with_fifty_workers(client):
    create_limit("child-subflow", 10)
    ns = run_snippet("seed000_option_b_tagged_task.py")
    wide = ns["parent_flow"].with_options(task_runner=ThreadPoolTaskRunner(max_workers=50))

    assert wide() == [2 * i for i in range(100)]

    parent = the_only(client.read_flow_runs(flow_name="parent-flow"))
    assert_children_of_submitted_tasks(client, parent, 100)
    assert max_overlap(client.read_task_runs(flow_run_id=parent.id)) <= 10


def test_option_b_every_waiting_wrapper_says_which_limit_and_how_full(client):
    create_limit("child-subflow", 10)
    ns = run_snippet("seed000_option_b_tagged_task.py")

    with full_until_someone_waits(client, "child-subflow", 10):
        ns["parent_flow"]()

    waited = waiting_messages(client, client.read_task_runs())
    assert len(waited) >= 2
    pattern = (
        r"Waiting for concurrency limit 'child-subflow' "
        r"\(\d+/10 slots in use(, \d+ earlier waiter\(s\))?\)"
    )
    assert [m for m in waited if not re.fullmatch(pattern, m)] == []


def test_option_b_concurrency_inside_the_wrapper_caps_the_child_flows_at_ten(client):
    create_limit("child-subflow", 10)
    child_flow = run_snippet("seed000_option_b_tagged_task.py")["child_flow"]
    run_child = run_snippet(
        "seed000_option_b_concurrency_in_task.py", task=task, child_flow=child_flow
    )["run_child"]

    @flow(name="parent-flow", task_runner=ThreadPoolTaskRunner(max_workers=30))
    def parent_flow():  # the seed's parent, around this snippet's run_child
        futs = [run_child.submit(i) for i in range(100)]
        return [f.result() for f in futs]

    assert parent_flow() == [2 * i for i in range(100)]

    parent = the_only(client.read_flow_runs(flow_name="parent-flow"))
    children = assert_children_of_submitted_tasks(client, parent, 100)
    assert max_overlap(children) <= 10


@pytest.fixture
def shared_file_limit() -> None:
    create_limit("my-shared-file", 1)


def test_file_lock_sync_appends_every_line_intact_one_writer_at_a_time(
    client, shared_file_limit, tmp_path
):
    shared = tmp_path / "local.file"
    source = (SNIPPETS / "seed000_file_lock_sync.py").read_text()
    assert '"/path/to/local.file"' in source
    snippet = tmp_path / "file_lock_sync.py"
    snippet.write_text(source.replace('"/path/to/local.file"', repr(str(shared))))
    writers = Occupancy()

    @contextmanager
    def open_while_counted(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with writers.during(), open(*args, **kwargs) as f:
            yield f

    child_flow = run_snippet(snippet, flow=flow, open=open_while_counted)["child_flow"]

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=10))
    def parent_flow() -> None:
        child_flow.map(range(20)).wait()

    parent_flow()

    assert sorted(shared.read_text().splitlines(keepends=True)) == sorted(
        f"{x}\n" for x in range(20)
    )
    assert (writers.entries, writers.peak) == (20, 1)
    children = client.read_flow_runs(flow_name="child-flow")
    assert len(children) == 20
    assert all(child.state.type is StateType.COMPLETED for child in children)


def test_file_lock_async_children_all_complete_and_leave_the_slot_free(client, shared_file_limit):
    child_flow = run_snippet("seed000_file_lock_async.py", flow=flow)["child_flow"]

    @flow
    async def parent_flow() -> None:
        await asyncio.gather(*(child_flow(x) for x in range(10)))

    asyncio.run(parent_flow())

    children = client.read_flow_runs(flow_name="child-flow")
    assert len(children) == 10
    assert all(child.state.type is StateType.COMPLETED for child in children)
    limit = client.read_concurrency_limit("my-shared-file")
    assert (limit.active_slots, limit.holders, limit.waiting) == (0, [], 0)


def test_file_lock_tagged_task_runs_one_write_at_a_time(client, shared_file_limit):
    write_file = run_snippet("seed000_file_lock_tagged_task.py", task=task)["write_file"]

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=10))
    def parent_flow() -> None:
        for future in [write_file.submit(x) for x in range(10)]:
            future.wait()

    with full_until_someone_waits(client, "my-shared-file", 1):
        parent_flow()

    writes = client.read_task_runs()
    assert len(writes) == 10
    assert all(run.state.type is StateType.COMPLETED for run in writes)
    assert all(run.tags == ["my-shared-file"] for run in writes)
    assert max_overlap(writes) == 1
    waited = waiting_messages(client, writes)
    assert "Waiting for concurrency limit 'my-shared-file' (1/1 slots in use)" in waited


def test_narrow_lock_in_child_lets_one_child_write_at_a_time(client, shared_file_limit):
    writers = Occupancy()
    written: list[int] = []

    def write_to_file(x: int) -> None:
        with writers.during():
            written.append(x)

    child_flow = run_snippet(
        "seed000_narrow_lock_in_child.py", flow=flow, write_to_file=write_to_file
    )["child_flow"]

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=10))
    def parent_flow() -> None:
        child_flow.map(range(20)).wait()

    parent_flow()

    assert sorted(written) == list(range(20))
    assert writers.peak == 1
    children = client.read_flow_runs(flow_name="child-flow")
    assert all(child.state.type is StateType.COMPLETED for child in children)


# --- seed 004: a parent flow whose subflow may fail ----------------------------------------

FAILING_PARENT = SNIPPETS / "seed004_failing_parent_flow.py"
WITH_RETURN_STATE = "    transform_load(df, return_state=True) # cleanup subflow will run\n"
PLAIN_CALL = "    # transform_load(df) # cleanup will never run\n"


@pytest.fixture
def plain_call_script(tmp_path: Path) -> Path:
    """The seed's alternative: the plain call uncommented, the return_state call commented."""
    source = FAILING_PARENT.read_text()
    assert WITH_RETURN_STATE in source and PLAIN_CALL in source
    swapped = source.replace(WITH_RETURN_STATE, "    # " + WITH_RETURN_STATE.lstrip()).replace(
        PLAIN_CALL, "    " + PLAIN_CALL.lstrip()[2:]
    )
    path = tmp_path / "failing_parent_plain_call.py"
    path.write_text(swapped)
    return path


def _flow_run(client, flow_name: str) -> FlowRun:
    return the_only(client.read_flow_runs(flow_name=flow_name))


def _log_text(client, run: FlowRun) -> str:
    return "\n".join(line.message for line in client.read_logs(flow_run_id=run.id))


@pytest.mark.parametrize(
    ("random_value", "transform_outcome"),
    [(0.9, StateType.FAILED), (0.1, StateType.COMPLETED)],
    ids=["transform-load-fails", "transform-load-succeeds"],
)
def test_with_return_state_cleanup_runs_and_the_parent_completes(
    home, client, random_value, transform_outcome
):
    result = run_script(FAILING_PARENT, home, random_value)

    assert result.returncode == 0, result.stderr
    parent = _flow_run(client, "parent")
    assert parent.state.type is StateType.COMPLETED
    subflows = {run.flow_name: run for run in client.read_flow_runs(parent_flow_run_id=parent.id)}
    assert set(subflows) == {"extract", "transform-load", "cleanup"}
    assert subflows["extract"].state.type is StateType.COMPLETED
    assert subflows["transform-load"].state.type is transform_outcome
    assert subflows["cleanup"].state.type is StateType.COMPLETED
    # log_prints=True: each subflow's prints are stored as its own log lines.
    assert "Running ingestion from 2022-12-01 to" in _log_text(client, subflows["extract"])
    transform_logs = _log_text(client, subflows["transform-load"])
    assert "Got data:" in transform_logs and "Marvin" in transform_logs
    assert "This step may fail..." in transform_logs
    assert "Cleanup process" in _log_text(client, subflows["cleanup"])
    if transform_outcome is StateType.FAILED:
        assert "Non-deterministic error has occured." in subflows["transform-load"].state.message


def test_with_a_plain_call_a_failing_transform_load_fails_the_parent_and_cleanup_never_runs(
    home, client, plain_call_script
):
    result = run_script(plain_call_script, home, 0.9)

    assert result.returncode != 0
    assert "ValueError: Non-deterministic error has occured." in result.stderr
    parent = _flow_run(client, "parent")
    assert parent.state.type is StateType.FAILED
    assert "Non-deterministic error has occured." in parent.state.message
    assert _flow_run(client, "transform-load").state.type is StateType.FAILED
    assert _flow_run(client, "extract").state.type is StateType.COMPLETED
    assert client.read_flow_runs(flow_name="cleanup") == []


def test_with_a_plain_call_a_succeeding_transform_load_lets_cleanup_run(
    home, client, plain_call_script
):
    result = run_script(plain_call_script, home, 0.1)

    assert result.returncode == 0, result.stderr
    assert _flow_run(client, "parent").state.type is StateType.COMPLETED
    assert _flow_run(client, "transform-load").state.type is StateType.COMPLETED
    assert _flow_run(client, "cleanup").state.type is StateType.COMPLETED
