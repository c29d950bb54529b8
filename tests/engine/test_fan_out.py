"""submit, map, Flow.submit/map, futures, wait/as_completed, futures as inputs, wait_for."""

from __future__ import annotations

import threading

import pytest

from anabranch import allow_failure, flow, task, unmapped
from anabranch.exceptions import UpstreamTaskError
from anabranch.futures import as_completed, wait
from anabranch.task_runners import ThreadPoolTaskRunner


@task
def add(x: int, y: int = 0) -> int:
    return x + y


@task
def explode(message: str = "boom") -> None:
    raise ValueError(message)


@flow
def square_flow(x: int) -> int:
    return x * x


def test_submit_returns_futures_with_results_and_states():
    @flow
    def fan() -> list:
        futures = [add.submit(i, 1) for i in range(5)]
        assert all(f.state.name in {"Pending", "Running", "Completed"} for f in futures)
        return [f.result(timeout=10) for f in futures]

    assert fan() == [1, 2, 3, 4, 5]


def test_map_zips_iterables_and_passes_unmapped_whole():
    @flow
    def mapped() -> list:
        return add.map([1, 2, 3], unmapped(10)).result()

    assert mapped() == [11, 12, 13]


def test_map_with_iterables_of_different_lengths_is_a_clear_error():
    @flow
    def uneven() -> None:
        add.map([1, 2], [1, 2, 3])

    with pytest.raises(ValueError, match="different lengths"):
        uneven()


def test_flow_submit_and_map_run_subflows_concurrently_and_record_them(client):
    both_started = threading.Barrier(2, timeout=10)

    @flow
    def meets(x: int) -> int:
        both_started.wait()
        return x

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def parent() -> list:
        first = meets.submit(1)
        second = meets.submit(2)
        squares = square_flow.map([2, 3])
        return [first.result(), second.result(), *squares.result()]

    assert parent() == [1, 2, 4, 9]
    runs = client.read_flow_runs()
    (root,) = [r for r in runs if r.parent_flow_run_id is None]
    children = [r for r in runs if r.parent_flow_run_id == root.id]
    assert sorted(r.flow_name for r in children) == ["meets", "meets", "square-flow", "square-flow"]
    assert all(r.state.is_completed() for r in children)


def test_future_result_raises_the_task_exception_unless_told_not_to():
    @flow
    def failing() -> tuple:
        future = explode.submit("bad input")
        with pytest.raises(ValueError, match="bad input"):
            future.result()
        error = future.result(raise_on_failure=False)
        return type(error), future.state.name

    assert failing() == (ValueError, "Failed")


def test_future_result_timeout_says_what_is_still_running():
    release = threading.Event()

    @task
    def held() -> None:
        release.wait(10)

    @flow
    def waiting() -> str:
        future = held.submit()
        try:
            future.result(timeout=0.05)
        except TimeoutError as exc:
            message = str(exc)
        release.set()
        future.wait()
        return message

    assert "did not finish within 0.05 s" in waiting()


def test_wait_and_as_completed_cover_every_future():
    @flow
    def collect() -> tuple:
        futures = [add.submit(i) for i in range(6)]
        done, not_done = wait(futures, timeout=10)
        seen = sorted(f.result() for f in as_completed(futures, timeout=10))
        return len(done), len(not_done), seen

    assert collect() == (6, 0, [0, 1, 2, 3, 4, 5])


def test_as_completed_yields_in_finishing_order():
    release_slow = threading.Event()

    @task
    def slow() -> str:
        release_slow.wait(10)
        return "slow"

    @task
    def fast() -> str:
        return "fast"

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def race() -> list:
        futures = [slow.submit(), fast.submit()]
        order = []
        for future in as_completed(futures, timeout=10):
            order.append(future.result())
            release_slow.set()
        return order

    assert race() == ["fast", "slow"]


def test_a_future_passed_as_argument_is_waited_for_and_resolved():
    @flow
    def chained() -> int:
        first = add.submit(1, 2)
        second = add.submit(first, 10)
        return second.result()

    assert chained() == 13


def test_a_failed_upstream_fails_the_dependent_run_without_running_it(client):
    ran = []

    @task
    def downstream(value: object) -> None:
        ran.append(value)

    @flow
    def pipeline() -> str:
        upstream = explode.submit("upstream broke")
        dependent = downstream.submit(upstream)
        with pytest.raises(UpstreamTaskError, match="upstream broke"):
            dependent.result()
        return dependent.state.name

    assert pipeline() == "UpstreamFailed"
    assert ran == []


def test_allow_failure_lets_the_dependent_run_receive_the_exception():
    @task
    def report(value: object) -> str:
        return type(value).__name__

    @flow
    def tolerant() -> str:
        return report.submit(allow_failure(explode.submit())).result()

    assert tolerant() == "ValueError"


def test_wait_for_orders_runs_without_passing_data():
    order: list[str] = []

    @task
    def step(name: str) -> None:
        order.append(name)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def ordered() -> None:
        first = step.submit("first")
        step.submit("second", wait_for=[first]).wait()

    ordered()
    assert order == ["first", "second"]


def test_a_flow_returning_futures_returns_their_results():
    @flow
    def returns_futures() -> list:
        return [add.submit(1), add.submit(2)]

    assert returns_futures() == [1, 2]


def test_a_flow_waits_for_submitted_runs_it_did_not_collect(client):
    @flow
    def forgetful() -> None:
        for i in range(5):
            add.submit(i)

    forgetful()
    (run,) = client.read_flow_runs()
    task_runs = client.read_task_runs(flow_run_id=run.id)
    assert len(task_runs) == 5 and all(t.state.is_completed() for t in task_runs)
