"""RunLifecycle on its own: the states one run moves through and what it records, with no
store at all (the records go to a list) and no real waiting (a fake clock)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from anabranch._engine.lifecycle import RunLifecycle, RunOptions, drive_async, drive_sync
from anabranch.schemas import State, StateType, TaskRun
from anabranch.states import Completed, Failed, Pending, Running
from anabranch.testing import FakeClock


class Recorded:
    """What a lifecycle recorded, as the recorder would have received it."""

    def __init__(self) -> None:
        self.states: list[State] = []

    def __call__(self, run: Any, state: State) -> None:
        self.states.append(state)

    @property
    def types(self) -> list[StateType]:
        return [state.type for state in self.states]


def lifecycle(recorded: Recorded, **options: Any) -> RunLifecycle:
    run = TaskRun(name="t-0", task_key="tests.t")
    return RunLifecycle(
        owner=None,
        run=run,
        options=RunOptions(persist_result=False, **options),
        record=recorded,
        make_logger=lambda: logging.LoggerAdapter(logging.getLogger("tests"), {}),
        kind="Task",
    )


def test_a_run_that_succeeds_records_running_then_completed_with_its_times() -> None:
    recorded = Recorded()
    life = lifecycle(recorded)

    state = drive_sync(life, lambda: 42)

    assert state.is_completed() and state.result() == 42
    assert recorded.types == [StateType.RUNNING, StateType.COMPLETED]
    assert life.run.run_count == 1
    assert life.run.start_time == recorded.states[0].timestamp
    assert life.run.end_time == recorded.states[1].timestamp


def test_retries_wait_their_delays_and_count_each_attempt() -> None:
    recorded = Recorded()
    life = lifecycle(recorded, retries=2, retry_delay_seconds=[30, 600])
    attempts = []

    def flaky() -> str:
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise ValueError("not yet")
        return "done"

    with FakeClock() as clock:
        state = drive_sync(life, flaky)

    assert state.result() == "done"
    assert clock.sleeps == [30, 600]
    assert recorded.types == [
        StateType.RUNNING, StateType.SCHEDULED, StateType.RUNNING, StateType.SCHEDULED,
        StateType.RUNNING, StateType.COMPLETED,
    ]
    assert [s.name for s in recorded.states] == [
        "Running", "AwaitingRetry", "Retrying", "AwaitingRetry", "Retrying", "Completed",
    ]
    assert life.run.run_count == 3


def test_a_run_out_of_retries_ends_failed_naming_the_error() -> None:
    recorded = Recorded()
    life = lifecycle(recorded, retries=1)

    with FakeClock():
        state = drive_sync(life, lambda: 1 / 0)

    assert state.type is StateType.FAILED
    assert "ZeroDivisionError" in (state.message or "")
    assert recorded.types[-1] is StateType.FAILED
    with pytest.raises(ZeroDivisionError):
        state.result()


def test_a_final_run_stays_final_whatever_is_set_after() -> None:
    recorded = Recorded()
    life = lifecycle(recorded)
    life.set_state(Pending())
    life.set_state(Running())
    done = life.set_state(Completed(data=1))

    assert life.set_state(Running()) is done
    assert life.set_state(Failed("late")) is done
    assert recorded.types == [StateType.PENDING, StateType.RUNNING, StateType.COMPLETED]


def test_an_interrupt_ends_the_run_crashed_and_is_raised_again() -> None:
    recorded = Recorded()
    life = lifecycle(recorded)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        drive_sync(life, interrupted)

    assert recorded.types == [StateType.RUNNING, StateType.CRASHED]
    assert "KeyboardInterrupt" in (recorded.states[-1].message or "")


def test_hooks_run_once_the_run_is_final_and_their_errors_change_nothing() -> None:
    recorded = Recorded()
    seen: list[StateType] = []

    def broken_hook(owner: Any, run: Any, state: State) -> None:
        seen.append(state.type)
        raise RuntimeError("hook failed")

    life = lifecycle(recorded, on_completion=[broken_hook])

    state = drive_sync(life, lambda: "ok")

    assert seen == [StateType.COMPLETED]
    assert state.is_completed() and recorded.types[-1] is StateType.COMPLETED


def test_the_async_driver_moves_through_the_same_states() -> None:
    recorded = Recorded()
    life = lifecycle(recorded, retries=1, retry_delay_seconds=5)
    attempts = []

    async def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("once")
        return 7

    with FakeClock() as clock:
        state = asyncio.run(drive_async(life, flaky))

    assert state.result() == 7 and clock.sleeps == [5]
    assert recorded.types == [
        StateType.RUNNING, StateType.SCHEDULED, StateType.RUNNING, StateType.COMPLETED,
    ]
