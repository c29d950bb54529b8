"""The orchestration's own state writes go through ``set_state``, held to ``refusal``."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from anabranch import _clock
from anabranch.client.embedded import EmbeddedClient
from anabranch.database import write_transaction
from anabranch.database.models import flow_run
from anabranch.orchestration.transitions import lost_process_end, refusal, set_state
from anabranch.orchestration.zombies import crash_zombies
from anabranch.schemas import FlowRun, RecordBatch, State, StateType, TaskRun


def stored(store: EmbeddedClient, type: StateType, *, heartbeat_age: float = 0) -> FlowRun:
    now = _clock.now()
    state = State(type=type, name=type.value.title(), timestamp=now - timedelta(seconds=90))
    run = FlowRun(
        name="r", flow_name="f", state=state, run_count=1,
        heartbeat=now - timedelta(seconds=heartbeat_age),
    )
    store.write_batch(RecordBatch(flow_runs=[run]))
    return run


def move(store: EmbeddedClient, run_id: uuid.UUID, type: StateType, **guards: Any) -> bool:
    with write_transaction(store.database_url) as conn:
        return set_state(
            conn, flow_run, run_id, type, type.value.title(), None, now=_clock.now(), **guards
        )


def test_set_state_moves_a_run_exactly_when_the_rule_allows_it(store: EmbeddedClient) -> None:
    for current in StateType:
        for proposed in StateType:
            run = stored(store, current)

            moved = move(store, run.id, proposed)

            assert moved is (refusal(current, proposed) is None), (current, proposed)
            expected = proposed if moved else current
            assert store.read_flow_run(run.id).state.type is expected
            assert len(store.read_states(run.id)) == (1 if moved else 0)


def test_a_callers_only_from_narrows_the_rule_and_never_widens_it(store: EmbeddedClient) -> None:
    running = stored(store, StateType.RUNNING)
    done = stored(store, StateType.COMPLETED)

    assert not move(store, running.id, StateType.CANCELLED, only_from=[StateType.PENDING])
    assert not move(store, done.id, StateType.CANCELLED, only_from=[StateType.COMPLETED])
    assert move(store, running.id, StateType.CANCELLED, only_from=[StateType.RUNNING])


def test_a_run_being_cancelled_whose_process_goes_silent_ends_cancelled(
    store: EmbeddedClient,
) -> None:
    cancelling = stored(store, StateType.CANCELLING, heartbeat_age=120)
    task = TaskRun(
        name="t-0", task_key="t", flow_run_id=cancelling.id,
        state=State(type=StateType.RUNNING, name="Running", timestamp=_clock.now()),
    )
    store.write_batch(RecordBatch(task_runs=[task]))

    with write_transaction(store.database_url) as conn:
        ended = crash_zombies(conn, now=_clock.now(), silent_for=60)

    assert ended == [cancelling.id]
    state = store.read_flow_run(cancelling.id).state
    assert state.type is StateType.CANCELLED and "No heartbeat since" in state.message
    assert store.read_task_run(task.id).state.type is StateType.CANCELLED


def test_a_lost_process_crashes_its_runs_except_those_being_cancelled() -> None:
    assert lost_process_end(StateType.RUNNING) is StateType.CRASHED
    assert lost_process_end(StateType.PENDING) is StateType.CRASHED
    assert lost_process_end(StateType.CANCELLING) is StateType.CANCELLED
