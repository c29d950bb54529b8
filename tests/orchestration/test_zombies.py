"""A Running flow run whose heartbeats stopped is crashed, with its task runs and slots."""

from __future__ import annotations

from datetime import timedelta

import pytest

from anabranch import _clock
from anabranch.client.embedded import EmbeddedClient
from anabranch.database import write_transaction
from anabranch.exceptions import InvalidStateTransition
from anabranch.orchestration.zombies import crash_zombies
from anabranch.schemas import (
    FlowRun,
    RecordBatch,
    SlotRequest,
    State,
    StateRecord,
    StateType,
    TaskRun,
)


def running(heartbeat_age: float) -> tuple[FlowRun, TaskRun]:
    now = _clock.now()
    state = State(type=StateType.RUNNING, name="Running", timestamp=now - timedelta(seconds=90))
    flow_run = FlowRun(
        name="silent", flow_name="f", state=state, run_count=1, start_time=state.timestamp,
        heartbeat=now - timedelta(seconds=heartbeat_age),
    )
    task_state = State(type=StateType.RUNNING, name="Running", timestamp=state.timestamp)
    task_run = TaskRun(name="t-0", task_key="t", flow_run_id=flow_run.id, state=task_state)
    return flow_run, task_run


def test_a_silent_running_flow_run_is_crashed_with_its_tasks_and_slots(store: EmbeddedClient):
    silent, silent_task = running(heartbeat_age=120)
    alive, _ = running(heartbeat_age=1)
    store.write_batch(
        RecordBatch(
            flow_runs=[silent, alive],
            task_runs=[silent_task],
            states=[StateRecord(run_id=silent.id, state=silent.state)],
        )
    )
    store.create_concurrency_limit("db", 1)
    (grant,) = store.acquire_concurrency_slots(
        [SlotRequest(names=["db"], holder="task run 't-0'", run_id=silent_task.id)]
    )
    assert grant.granted

    with write_transaction(store.database_url) as conn:
        crashed = crash_zombies(conn, now=_clock.now(), silent_for=60)
    with write_transaction(store.database_url) as conn:
        assert crash_zombies(conn, now=_clock.now(), silent_for=60) == []

    assert crashed == [silent.id]
    flow_run = store.read_flow_run(silent.id)
    assert flow_run.state.type is StateType.CRASHED
    assert "No heartbeat since" in flow_run.state.message
    assert [s.state.name for s in store.read_states(silent.id)] == ["Running", "Crashed"]
    assert store.read_task_run(silent_task.id).state.type is StateType.CRASHED
    assert store.read_flow_run(alive.id).state.type is StateType.RUNNING
    assert store.read_concurrency_limit("db").active_slots == 0


def test_a_run_crashed_for_silence_takes_the_final_state_its_process_reports_late(
    store: EmbeddedClient,
):
    # The process finished while its records could not arrive (a server away, a spool):
    # the run was crashed for its silence, then its own Completed arrives, older than that.
    silent, silent_task = running(heartbeat_age=120)
    store.write_batch(RecordBatch(flow_runs=[silent], task_runs=[silent_task]))
    completed_at = _clock.now() - timedelta(seconds=30)
    with write_transaction(store.database_url) as conn:
        assert crash_zombies(conn, now=_clock.now(), silent_for=60) == [silent.id]

    done = State(type=StateType.COMPLETED, name="Completed", timestamp=completed_at)
    task_done = State(type=StateType.COMPLETED, name="Completed", timestamp=completed_at)
    store.write_batch(
        RecordBatch(
            flow_runs=[silent.model_copy(update={"state": done})],
            task_runs=[silent_task.model_copy(update={"state": task_done})],
            states=[
                StateRecord(run_id=silent.id, state=done),
                StateRecord(run_id=silent_task.id, state=task_done),
            ],
        )
    )

    assert store.read_flow_run(silent.id).state.type is StateType.COMPLETED
    assert store.read_task_run(silent_task.id).state.type is StateType.COMPLETED
    # Final again: a later move on (Running) is refused, however new it is.
    later = State(type=StateType.RUNNING, name="Running", timestamp=_clock.now())
    with write_transaction(store.database_url) as conn:
        assert crash_zombies(conn, now=_clock.now(), silent_for=60) == []
    with pytest.raises(InvalidStateTransition):
        store.write_batch(RecordBatch(flow_runs=[silent.model_copy(update={"state": later})]))
    assert store.read_flow_run(silent.id).state.type is StateType.COMPLETED
