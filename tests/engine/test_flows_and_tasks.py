"""Decorators, options, run names, parameter validation, subflow links, results."""

from __future__ import annotations

import datetime

import pytest

from anabranch import flow, get_run_context, tags, task
from anabranch.exceptions import ParameterTypeError
from anabranch.schemas import StateType


@task
def double(x: int) -> int:
    return 2 * x


@flow
def doubling(x: int) -> int:
    return double(x)


def test_decorated_functions_still_call_like_functions():
    assert doubling(4) == 8
    assert double(5) == 10
    assert doubling.name == "doubling"
    assert double.name == "double"


def test_flow_name_turns_underscores_into_dashes():
    @flow
    def load_daily_sales():
        return None

    assert load_daily_sales.name == "load-daily-sales"
    assert flow(name="custom")(load_daily_sales.fn).name == "custom"


def test_with_options_returns_a_changed_copy():
    retried = double.with_options(name="retried", retries=3, tags=["x"])
    assert (retried.name, retried.retries, retried.tags) == ("retried", 3, frozenset({"x"}))
    assert (double.name, double.retries) == ("double", 0)
    with pytest.raises(TypeError, match="unknown task options"):
        double.with_options(retires=3)


def test_a_flow_run_and_its_task_runs_are_recorded(client):
    state = doubling(3, return_state=True)
    assert state.is_completed() and state.result() == 6
    (run,) = client.read_flow_runs()
    assert run.flow_name == "doubling"
    assert run.parameters == {"x": 3}
    assert run.state.type is StateType.COMPLETED
    assert run.start_time <= run.end_time
    (task_run,) = client.read_task_runs(flow_run_id=run.id)
    assert task_run.name == "double-0"
    assert task_run.state.type is StateType.COMPLETED
    states = [record.state.name for record in client.read_states(run.id)]
    assert states == ["Pending", "Running", "Completed"]


def test_subflows_link_to_parent_flow_run_and_calling_task_run(client):
    @flow
    def grandchild() -> str:
        return "leaf"

    @task
    def calls_grandchild() -> str:
        return grandchild()

    @flow
    def child() -> str:
        return calls_grandchild()

    @flow
    def parent() -> str:
        return child()

    assert parent() == "leaf"
    runs = {run.flow_name: run for run in client.read_flow_runs()}
    assert runs["parent"].parent_flow_run_id is None
    assert runs["child"].parent_flow_run_id == runs["parent"].id
    assert runs["grandchild"].parent_flow_run_id == runs["child"].id
    (calling_task,) = client.read_task_runs(flow_run_id=runs["child"].id)
    assert runs["grandchild"].parent_task_run_id == calling_task.id


def test_flow_parameters_are_validated_and_coerced():
    @flow
    def backfill(start_date: datetime.date, days: int = 1) -> tuple:
        return start_date, days

    assert backfill("2022-12-01", days="3") == (datetime.date(2022, 12, 1), 3)


def test_invalid_flow_parameters_name_the_parameter_and_record_nothing(client):
    @flow
    def backfill(start_date: datetime.date) -> None:
        return None

    with pytest.raises(ParameterTypeError, match="'start_date'"):
        backfill("not a date")
    with pytest.raises(ParameterTypeError, match="missing a required argument"):
        backfill()
    assert client.read_flow_runs() == []


def test_validation_can_be_turned_off():
    @flow(validate_parameters=False)
    def raw(day: datetime.date):
        return day

    assert raw("2022-12-01") == "2022-12-01"


def test_run_names_follow_templates_and_callables(client):
    @task(task_run_name="square-{x}")
    def square(x: int) -> int:
        return x * x

    @flow(flow_run_name="report-for-{region}")
    def report(region: str) -> int:
        return square(3)

    report("emea")
    (run,) = client.read_flow_runs()
    assert run.name == "report-for-emea"
    assert client.read_task_runs(flow_run_id=run.id)[0].name == "square-3"

    @flow(flow_run_name=lambda: "from-a-callable")
    def named() -> None:
        return None

    named()
    assert "from-a-callable" in {r.name for r in client.read_flow_runs()}


def test_a_bad_run_name_template_says_which_parameter_is_missing():
    @flow(flow_run_name="run-{missing}")
    def templated(x: int) -> None:
        return None

    with pytest.raises(ParameterTypeError, match="missing"):
        templated(1)


def test_tags_from_decorators_and_context_are_recorded(client):
    @task(tags=["io"])
    def fetch() -> None:
        return None

    @flow(tags=["nightly"])
    def tagged() -> None:
        with tags("db"):
            fetch()

    tagged()
    (run,) = client.read_flow_runs()
    assert run.tags == ["nightly"]
    assert client.read_task_runs(flow_run_id=run.id)[0].tags == ["db", "io"]


def test_run_context_is_visible_inside_runs():
    @task
    def whoami() -> str:
        return get_run_context().task_run.name

    @flow
    def outer() -> tuple:
        return get_run_context().flow_run.flow_name, whoami()

    assert outer() == ("outer", "whoami-0")


def test_tasks_called_outside_a_flow_run_and_are_recorded(client):
    assert double(21) == 42
    future = double.submit(2)
    assert future.result(timeout=10) == 4
    from anabranch.client.recorder import flush_all

    flush_all()
    runs = client.read_task_runs()
    assert sorted(r.state.name for r in runs) == ["Completed", "Completed"]
    assert all(r.flow_run_id is None for r in runs)
