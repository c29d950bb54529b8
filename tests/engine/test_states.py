"""States: constructors, results of failed runs, return_state, failures across subflows,
tracebacks, retries, timeouts and state hooks."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from anabranch import Flow, State, Task, flow, task
from anabranch import states as st
from anabranch.exceptions import CancelledRun, CrashedRun, FailedRun
from anabranch.schemas import FlowRun, StateType, TaskRun

# A timed-out run must end long before its 30 s body would; this bound only catches an
# engine that waits for the body instead of stopping it.
PROMPTLY = 10


def state_names(client, run_id) -> list[str]:
    return [record.state.name for record in client.read_states(run_id)]


# --- constructors and State.result() ---------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "state_type", "name"),
    [
        (st.Scheduled, StateType.SCHEDULED, "Scheduled"),
        (st.Late, StateType.SCHEDULED, "Late"),
        (st.AwaitingRetry, StateType.SCHEDULED, "AwaitingRetry"),
        (st.Pending, StateType.PENDING, "Pending"),
        (st.Running, StateType.RUNNING, "Running"),
        (st.Retrying, StateType.RUNNING, "Retrying"),
        (st.Completed, StateType.COMPLETED, "Completed"),
        (st.Failed, StateType.FAILED, "Failed"),
        (st.Crashed, StateType.CRASHED, "Crashed"),
        (st.Cancelling, StateType.CANCELLING, "Cancelling"),
        (st.Cancelled, StateType.CANCELLED, "Cancelled"),
        (st.Paused, StateType.PAUSED, "Paused"),
    ],
)
def test_state_constructors_have_the_type_and_name_users_know(make, state_type, name):
    state = make()
    assert isinstance(state, State)
    assert (state.type, state.name, state.message) == (state_type, name, None)
    assert state.is_final() is (state_type in st.TERMINAL_TYPES)
    named = make("why", name="Custom")
    assert (named.type, named.name, named.message) == (state_type, "Custom", "why")


def test_completed_result_returns_its_data():
    assert st.Completed(data={"a": 1}).result() == {"a": 1}


def test_failed_result_raises_its_exception_unless_told_not_to():
    error = ValueError("bad input")
    state = st.Failed("it failed", data=error)

    with pytest.raises(ValueError, match="bad input") as raised:
        state.result()
    assert raised.value is error
    assert state.result(raise_on_failure=False) is error


@pytest.mark.parametrize(
    ("make", "error_type"),
    [(st.Failed, FailedRun), (st.Crashed, CrashedRun), (st.Cancelled, CancelledRun)],
)
def test_a_final_state_without_an_exception_raises_an_error_carrying_its_message(
    make, error_type
):
    state = make("the reason")
    with pytest.raises(error_type, match="the reason"):
        state.result()
    assert isinstance(state.result(raise_on_failure=False), error_type)


# --- return_state and failures across runs ---------------------------------------------------


@task
def explode(message: str = "task boom") -> None:
    raise ValueError(message)


@flow
def exploding_flow(message: str = "flow boom") -> None:
    raise ValueError(message)


def test_return_state_on_a_flow_returns_the_final_state_without_raising(client):
    state = exploding_flow(return_state=True)

    assert state.is_failed() and state.type is StateType.FAILED
    assert "flow boom" in state.message
    assert isinstance(state.result(raise_on_failure=False), ValueError)
    (run,) = client.read_flow_runs()
    assert run.state.type is StateType.FAILED


def test_return_state_on_a_task_returns_the_final_state_and_the_flow_goes_on(client):
    @flow
    def tolerant() -> str:
        state = explode(return_state=True)
        assert state.is_failed()
        return "carried on"

    assert tolerant() == "carried on"
    (run,) = client.read_flow_runs()
    assert run.state.type is StateType.COMPLETED
    (task_run,) = client.read_task_runs(flow_run_id=run.id)
    assert task_run.state.type is StateType.FAILED


def test_a_failed_subflow_raises_in_its_parent_which_then_fails(client):
    @flow
    def parent() -> str:
        exploding_flow("child broke")
        return "unreachable"

    with pytest.raises(ValueError, match="child broke"):
        parent()

    (root,) = client.read_flow_runs(flow_name="parent")
    (child,) = client.read_flow_runs(parent_flow_run_id=root.id)
    assert child.state.type is StateType.FAILED
    assert root.state.type is StateType.FAILED
    assert "child broke" in root.state.message


def test_a_parent_that_catches_its_subflows_exception_completes(client):
    @flow
    def parent() -> str:
        try:
            exploding_flow("handled")
        except ValueError as exc:
            return f"recovered from {exc}"
        return "unreachable"

    assert parent() == "recovered from handled"
    (root,) = client.read_flow_runs(flow_name="parent")
    (child,) = client.read_flow_runs(parent_flow_run_id=root.id)
    assert (root.state.type, child.state.type) == (StateType.COMPLETED, StateType.FAILED)


def test_a_failed_state_keeps_the_traceback_and_the_failure_is_logged_with_it(client):
    def innermost_helper() -> None:
        raise LookupError("deep down")

    @flow
    def failing() -> None:
        innermost_helper()

    state = failing(return_state=True)

    error = state.result(raise_on_failure=False)
    assert isinstance(error, LookupError)
    assert error.__traceback__ is not None
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert frames[-1] == "innermost_helper"

    (run,) = client.read_flow_runs()
    errors = [line for line in client.read_logs(flow_run_id=run.id) if line.level == logging.ERROR]
    assert len(errors) == 1
    assert "failed with LookupError: deep down" in errors[0].message
    assert "Traceback (most recent call last)" in errors[0].message
    assert "innermost_helper" in errors[0].message




def test_a_flow_returning_a_failed_task_state_fails(client):
    @flow
    def hands_back_failure() -> State:
        state = explode("returned failure", return_state=True)
        assert state.is_failed()
        return state

    state = hands_back_failure(return_state=True)

    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), ValueError)


def test_a_flow_returning_a_manually_created_state_ends_in_that_state(client):
    @flow
    def decides() -> State:
        return st.Failed("decided to fail")

    state = decides(return_state=True)

    assert state.is_failed() and "decided to fail" in (state.message or "")
    (run,) = client.read_flow_runs()
    assert run.state.type is StateType.FAILED


def test_a_flow_returning_states_fails_if_any_of_them_failed(client):
    @task
    def fine() -> int:
        return 1

    @flow
    def mixed() -> list[State]:
        return [fine(return_state=True), explode(return_state=True)]

    assert mixed(return_state=True).is_failed()


def test_a_flow_returning_a_completed_task_state_returns_the_task_result():
    @task
    def fine() -> int:
        return 1

    @flow
    def passes_through() -> Any:
        return fine(return_state=True)

    assert passes_through() == 1


# --- retries ---------------------------------------------------------------------------------


class FailsThenSucceeds:
    """A body that raises for its first ``failures`` calls, noting when each call started."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.started: list[float] = []

    def __call__(self) -> str:
        self.started.append(time.monotonic())
        if len(self.started) <= self.failures:
            raise self.error(f"attempt {len(self.started)} failed")
        return f"succeeded on attempt {len(self.started)}"

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.started, self.started[1:], strict=False)]


def test_a_task_failing_twice_then_succeeding_with_two_retries_completes(client):
    body = FailsThenSucceeds(failures=2)
    flaky = task(retries=2, task_run_name="flaky")(lambda: body())

    @flow
    def pipeline() -> str:
        return flaky()

    assert pipeline() == "succeeded on attempt 3"

    (task_run,) = client.read_task_runs()
    assert task_run.run_count == 3
    assert task_run.state.type is StateType.COMPLETED
    history = client.read_states(task_run.id)
    assert [r.state.name for r in history] == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]
    assert [r.state.type for r in history if r.state.name == "AwaitingRetry"] == [
        StateType.SCHEDULED
    ] * 2
    assert [r.state.type for r in history if r.state.name == "Retrying"] == [
        StateType.RUNNING
    ] * 2
    assert "attempt 1 failed" in history[2].state.message


def test_a_task_that_keeps_failing_ends_failed_after_its_retries(client):
    body = FailsThenSucceeds(failures=5)
    flaky = task(retries=2)(lambda: body())

    state = flaky(return_state=True)

    assert state.is_failed()
    assert "attempt 3 failed" in state.message
    assert len(body.started) == 3


def test_retry_delay_seconds_list_sets_each_delay_and_repeats_the_last(client):
    body = FailsThenSucceeds(failures=3)
    flaky = task(retries=3, retry_delay_seconds=[0, 0.05], task_run_name="delayed")(
        lambda: body()
    )

    @flow
    def pipeline() -> str:
        return flaky()

    assert pipeline() == "succeeded on attempt 4"

    _, second, third = body.gaps()
    assert second >= 0.05 and third >= 0.05
    (task_run,) = client.read_task_runs()
    retry_lines = [
        line.message
        for line in client.read_logs(task_run_id=task_run.id)
        if line.level == logging.WARNING
    ]
    assert [line.split("; ")[-1] for line in retry_lines] == [
        "retry 1/3 in 0s.",
        "retry 2/3 in 0.05s.",
        "retry 3/3 in 0.05s.",
    ]


def test_retry_condition_fn_returning_false_stops_retries(client):
    seen: list[tuple[Any, Any, State]] = []

    def only_connection_errors(task_: Task, task_run: TaskRun, state: State) -> bool:
        seen.append((task_, task_run, state))
        return isinstance(state.result(raise_on_failure=False), ConnectionError)

    body = FailsThenSucceeds(failures=2, error=ValueError)
    picky = task(retries=5, retry_condition_fn=only_connection_errors)(lambda: body())

    state = picky(return_state=True)

    assert state.is_failed()
    assert len(body.started) == 1
    ((task_, task_run, probe),) = seen
    assert task_ is picky and isinstance(task_run, TaskRun) and probe.is_failed()
    # And a condition that allows retrying lets the same failures be retried.
    retried = FailsThenSucceeds(failures=2)
    patient = task(retries=5, retry_condition_fn=only_connection_errors)(lambda: retried())
    assert patient() == "succeeded on attempt 3"


def test_flow_retries_rerun_the_flow_until_it_completes(client):
    body = FailsThenSucceeds(failures=1)

    @flow(retries=1)
    def flaky_flow() -> str:
        return body()

    assert flaky_flow() == "succeeded on attempt 2"

    (run,) = client.read_flow_runs()
    assert run.run_count == 2
    assert state_names(client, run.id) == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]


# --- timeouts --------------------------------------------------------------------------------


def test_a_task_exceeding_its_timeout_ends_timed_out_promptly(client):
    @task(timeout_seconds=0.2, task_run_name="sleepy")
    def sleepy() -> None:
        time.sleep(30)

    @flow
    def pipeline() -> dict[str, State]:
        return {"sleepy": sleepy(return_state=True)}

    started = time.monotonic()
    state = pipeline()["sleepy"]
    elapsed = time.monotonic() - started

    assert elapsed < PROMPTLY
    assert state.type is StateType.FAILED and state.name == "TimedOut"
    assert "Task run 'sleepy'" in state.message
    assert "exceeded its timeout of 0.2 s" in state.message
    assert isinstance(state.result(raise_on_failure=False), TimeoutError)
    (task_run,) = client.read_task_runs()
    assert task_run.state.name == "TimedOut"


def test_a_timed_out_sync_task_body_is_stopped_rather_than_left_running():
    stopped = threading.Event()

    @task(timeout_seconds=0.2)
    def busy() -> None:
        try:
            while True:
                time.sleep(0.01)
        finally:
            stopped.set()

    state = busy(return_state=True)

    assert state.name == "TimedOut"
    assert stopped.wait(PROMPTLY)


def test_an_async_task_exceeding_its_timeout_ends_timed_out_promptly(client):
    @task(timeout_seconds=0.2, task_run_name="slow-async")
    async def slow() -> None:
        await asyncio.sleep(30)

    @flow
    async def pipeline() -> dict[str, State]:
        return {"slow": await slow(return_state=True)}

    started = time.monotonic()
    state = asyncio.run(pipeline())["slow"]

    assert time.monotonic() - started < PROMPTLY
    assert state.name == "TimedOut" and state.is_failed()
    assert "Task run 'slow-async'" in state.message
    assert "exceeded its timeout" in state.message


def test_a_flow_exceeding_its_timeout_ends_timed_out_promptly(client):
    @flow(timeout_seconds=0.2, flow_run_name="slow-flow")
    def slow_flow() -> None:
        time.sleep(30)

    started = time.monotonic()
    state = slow_flow(return_state=True)

    assert time.monotonic() - started < PROMPTLY
    assert state.name == "TimedOut" and state.type is StateType.FAILED
    assert "Flow run 'slow-flow'" in state.message
    assert "exceeded its timeout" in state.message
    with pytest.raises(TimeoutError, match="exceeded its timeout"):
        state.result()
    (run,) = client.read_flow_runs()
    assert run.state.name == "TimedOut"


def test_an_async_flow_exceeding_its_timeout_ends_timed_out_promptly(client):
    @flow(timeout_seconds=0.2, flow_run_name="slow-async-flow")
    async def slow_flow() -> None:
        await asyncio.sleep(30)

    started = time.monotonic()
    state = asyncio.run(slow_flow(return_state=True))

    assert time.monotonic() - started < PROMPTLY
    assert state.name == "TimedOut"
    assert "Flow run 'slow-async-flow'" in state.message
    assert "exceeded its timeout" in state.message


# --- hooks -----------------------------------------------------------------------------------


def test_task_hooks_are_called_with_the_task_its_run_and_the_final_state(client):
    calls: list[tuple[str, Any, Any, State]] = []

    def on_completion(task_: Any, run: Any, state: State) -> None:
        calls.append(("completion", task_, run, state))

    def on_failure(task_: Any, run: Any, state: State) -> None:
        calls.append(("failure", task_, run, state))

    @task(on_completion=[on_completion], on_failure=[on_failure])
    def maybe(fail: bool) -> str:
        if fail:
            raise RuntimeError("hooked failure")
        return "fine"

    @flow
    def pipeline() -> None:
        maybe(False)
        maybe(True, return_state=True)

    pipeline()

    (completed, failed) = calls
    assert completed[0] == "completion" and completed[1] is maybe
    assert isinstance(completed[2], TaskRun) and completed[3].is_completed()
    assert completed[3].result() == "fine"
    assert failed[0] == "failure" and failed[1] is maybe and failed[3].is_failed()
    recorded = {r.id: r for r in client.read_task_runs()}
    assert completed[2].id in recorded and failed[2].id in recorded
    assert recorded[failed[2].id].state.type is StateType.FAILED


def test_flow_hooks_are_called_with_the_flow_its_run_and_the_final_state(client):
    calls: list[tuple[str, Any, Any, State]] = []

    def on_completion(flow_: Any, run: Any, state: State) -> None:
        calls.append(("completion", flow_, run, state))

    def on_failure(flow_: Any, run: Any, state: State) -> None:
        calls.append(("failure", flow_, run, state))

    @flow(on_completion=[on_completion], on_failure=[on_failure])
    def hooked(fail: bool) -> str:
        if fail:
            raise RuntimeError("flow hooked failure")
        return "fine"

    hooked(False)
    hooked(True, return_state=True)

    (completed, failed) = calls
    assert completed[0] == "completion" and failed[0] == "failure"
    assert completed[1] is hooked and isinstance(hooked, Flow)
    assert isinstance(completed[2], FlowRun) and completed[2].parameters == {"fail": False}
    assert completed[3].is_completed() and failed[3].is_failed()
    assert {r.id for r in client.read_flow_runs()} == {completed[2].id, failed[2].id}


def test_a_hook_that_raises_is_logged_and_leaves_the_state_alone(client):
    def broken_hook(*_: Any) -> None:
        raise KeyError("hook bug")

    @flow(on_completion=[broken_hook])
    def fine() -> int:
        return 1

    state = fine(return_state=True)

    assert state.is_completed() and state.result() == 1
    (run,) = client.read_flow_runs()
    assert run.state.type is StateType.COMPLETED
    errors = [m.message for m in client.read_logs(flow_run_id=run.id) if m.level >= 40]
    assert any("hook bug" in message for message in errors), errors
