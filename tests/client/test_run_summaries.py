"""What the web UI reads, through every transport and database: root runs only, failed
first, counts of children by state and flow, paged and filtered task runs and logs, flows
with their recent runs, and the runs changed since a moment."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from anabranch.client.base import AnabranchClient
from anabranch.schemas import FlowRun, LogRecord, RecordBatch, State, StateType, TaskRun
from client.conftest import store_runs

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=timezone.utc)


def run(flow: str, name: str, state: StateType, minutes: float, **fields) -> FlowRun:
    return FlowRun(
        name=name, flow_name=flow, state=State(type=state, name=state.value.title()),
        created=T0 + timedelta(minutes=minutes), **fields,
    )


def family(client: AnabranchClient) -> tuple[str, FlowRun, list[FlowRun]]:
    """A root run with five children of two flows (one failed, one crashed) and a
    grandchild."""
    tag = uuid.uuid4().hex[:8]
    root = run(f"root-{tag}", f"root-{tag}", StateType.RUNNING, 0)
    kids = [
        run(f"kid-{tag}", "kid-0", StateType.COMPLETED, 1, parent_flow_run_id=root.id),
        run(f"kid-{tag}", "kid-1", StateType.FAILED, 2, parent_flow_run_id=root.id),
        run(f"kid-{tag}", "kid-2", StateType.COMPLETED, 3, parent_flow_run_id=root.id),
        run(f"other-{tag}", "other-0", StateType.CRASHED, 4, parent_flow_run_id=root.id),
        run(f"other-{tag}", "other-1", StateType.RUNNING, 5, parent_flow_run_id=root.id),
    ]
    grandchild = run(f"kid-{tag}", "grandchild", StateType.COMPLETED, 6,
                     parent_flow_run_id=kids[0].id)
    store_runs(client, root, *kids, grandchild)
    return tag, root, kids


def test_root_only_leaves_children_out_and_failed_first_puts_them_on_top(
    client: AnabranchClient,
) -> None:
    tag, root, _ = family(client)

    roots = client.read_flow_runs(flow_name=f"root-{tag}", root_only=True)
    assert [r.id for r in roots] == [root.id]
    assert client.read_flow_runs(flow_name=f"kid-{tag}", root_only=True) == []
    children = client.read_flow_runs(parent_flow_run_id=root.id, failed_first=True)
    assert [c.name for c in children] == ["other-0", "kid-1", "other-1", "kid-2", "kid-0"]
    assert [r.name for r in client.read_flow_runs(name_contains=f"ROOT-{tag[:4]}")] == [
        f"root-{tag}"
    ]
    # A name filter is text, not a pattern: % and _ match only themselves.
    assert client.read_flow_runs(name_contains=f"%{tag}") == []


def test_children_are_counted_by_state_and_by_flow_without_reading_them(
    client: AnabranchClient,
) -> None:
    tag, root, kids = family(client)
    tasks = [
        TaskRun(name=f"t-{i}", task_key="t", flow_run_id=root.id,
                state=State(type=state, name=state.value.title()))
        for i, state in enumerate([StateType.COMPLETED, StateType.COMPLETED, StateType.FAILED])
    ]
    client.write_batch(RecordBatch(task_runs=tasks))

    summary, first_kid = client.summarize_children(
        flow_run_ids=[root.id, kids[0].id], by_flow=True
    )

    assert summary.flow_run_id == root.id
    assert summary.subflows.counts == {
        StateType.COMPLETED: 2, StateType.FAILED: 1, StateType.CRASHED: 1, StateType.RUNNING: 1
    }
    assert summary.task_runs.counts == {StateType.COMPLETED: 2, StateType.FAILED: 1}
    assert summary.subflows_by_flow[f"other-{tag}"].counts == {
        StateType.CRASHED: 1, StateType.RUNNING: 1
    }
    assert summary.subflows_by_flow[f"kid-{tag}"].total == 3
    assert first_kid.subflows.total == 1 and first_kid.task_runs.total == 0
    failed = client.read_task_runs(flow_run_id=root.id, failed_first=True, limit=1)
    assert [t.name for t in failed] == ["t-2"]
    page_two = client.read_task_runs(flow_run_id=root.id, limit=2, offset=2)
    assert [t.name for t in page_two] == ["t-2"]
    assert [t.name for t in client.read_task_runs(
        flow_run_id=root.id, state_types=[StateType.COMPLETED]
    )] == ["t-0", "t-1"]


def test_logs_filter_by_level_and_text_and_take_in_the_subflows_on_request(
    client: AnabranchClient,
) -> None:
    _, root, kids = family(client)
    task = TaskRun(name="t", task_key="t", flow_run_id=kids[1].id)
    lines = [
        LogRecord(flow_run_id=root.id, name="x", level=logging.INFO, message="root says hello",
                  timestamp=T0),
        LogRecord(flow_run_id=root.id, name="x", level=logging.ERROR, message="root broke",
                  timestamp=T0 + timedelta(seconds=1)),
        LogRecord(flow_run_id=kids[1].id, name="x", level=logging.ERROR,
                  message="kid broke 100%", timestamp=T0 + timedelta(seconds=2)),
        LogRecord(task_run_id=task.id, name="x", level=logging.WARNING,
                  message="task in the kid warns", timestamp=T0 + timedelta(seconds=3)),
    ]
    client.write_batch(RecordBatch(task_runs=[task], logs=lines))

    def messages(**filters) -> list[str]:
        return [line.message for line in client.read_logs(flow_run_id=root.id, **filters)]

    assert messages() == ["root says hello", "root broke"]
    assert messages(include_subflows=True) == [
        "root says hello", "root broke", "kid broke 100%", "task in the kid warns"
    ]
    assert messages(include_subflows=True, min_level=logging.ERROR) == [
        "root broke", "kid broke 100%"
    ]
    assert messages(include_subflows=True, text="BROKE 100%") == ["kid broke 100%"]
    assert messages(include_subflows=True, limit=2, offset=2) == [
        "kid broke 100%", "task in the kid warns"
    ]


def test_flows_list_their_newest_runs_as_marks(client: AnabranchClient) -> None:
    tag, _, _ = family(client)

    flows = {flow.name: flow for flow in client.read_flows(recent=2)}

    kid = flows[f"kid-{tag}"]
    assert kid.run_count == 4
    assert [mark.name for mark in kid.recent] == ["grandchild", "kid-2"]
    assert kid.recent[0].state_type == StateType.COMPLETED
    assert flows[f"root-{tag}"].run_count == 1


def test_runs_changed_since_a_moment_name_their_parent(client: AnabranchClient) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    _, root, kids = family(client)
    task = TaskRun(name="t", task_key="t", flow_run_id=kids[2].id)
    client.write_batch(RecordBatch(task_runs=[task]))

    changed = {change.flow_run_id: change for change in client.read_run_changes(since=before)}

    assert {root.id, *(kid.id for kid in kids)} <= set(changed)
    assert changed[kids[2].id].parent_flow_run_id == root.id
    assert changed[root.id].parent_flow_run_id is None
    later = max(change.updated for change in changed.values())
    assert all(c.flow_run_id not in changed or c.updated > later
               for c in client.read_run_changes(since=later))


def test_a_run_is_found_by_the_start_of_its_id(client: AnabranchClient) -> None:
    flow = f"prefix-{uuid.uuid4().hex[:8]}"
    runs = [FlowRun(name=f"r{i}", flow_name=flow) for i in range(3)]
    client.write_batch(RecordBatch(flow_runs=runs))
    target = runs[1]
    for start in (str(target.id)[:30], target.id.hex[:26].upper()):
        assert [r.id for r in client.read_flow_runs(id_prefix=start)] == [target.id]
    assert len(client.read_flow_runs(id_prefix=str(target.id)[:4], flow_name=flow)) == 3
    with pytest.raises(ValueError, match="not the start of a run id"):
        client.read_flow_runs(id_prefix="zz-top")
