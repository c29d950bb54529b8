"""Persisted results (where, how, when not) and task caching (keys, expiration, refresh)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from anabranch import flow, task
from anabranch.exceptions import MissingResult, SerializationError
from anabranch.schemas import StateType
from anabranch.states import State


def stored_file(state: State) -> Path:
    """The file a persisted result was written to (local storage only)."""
    assert state.result_ref is not None
    return Path(state.result_ref.storage) / state.result_ref.key


def test_a_flow_result_is_persisted_by_default_and_loads_from_the_recorded_state(client):
    @flow
    def report() -> dict[str, Any]:
        return {"rows": 3, "names": ["a", "b"]}

    assert report() == {"rows": 3, "names": ["a", "b"]}

    (run,) = client.read_flow_runs()
    recorded = client.read_flow_run(run.id).state
    assert recorded.type is StateType.COMPLETED
    assert recorded.result_ref is not None and recorded.result_ref.serializer == "cloudpickle"
    assert recorded.data is None  # only the reference travels; the value is read from storage
    assert stored_file(recorded).exists()
    assert recorded.result() == {"rows": 3, "names": ["a", "b"]}


def test_a_persisted_flow_result_loads_in_another_process(home, client):
    @flow
    def report() -> list[int]:
        return [1, 2, 3]

    report()
    (run,) = client.read_flow_runs()

    reader = (
        "import sys, uuid\n"
        "from anabranch.client import get_client\n"
        "print(repr(get_client().read_flow_run(uuid.UUID(sys.argv[1])).state.result()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", reader, str(run.id)],
        env={**os.environ, "ANABRANCH_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[1, 2, 3]"


def test_a_task_result_is_persisted_only_when_asked(client):
    @task(persist_result=True)
    def kept() -> str:
        return "kept"

    @task
    def transient() -> str:
        return "transient"

    @flow
    def pipeline() -> None:
        kept()
        transient()

    pipeline()

    (run,) = client.read_flow_runs()
    states = {r.name: client.read_task_run(r.id).state for r in client.read_task_runs()}
    assert states["kept-0"].result_ref is not None
    assert states["kept-0"].result() == "kept"
    assert states["transient-0"].result_ref is None
    assert states["transient-0"].type is StateType.COMPLETED


def test_json_result_serializer_writes_readable_json(client):
    @flow(result_serializer="json")
    def summary() -> dict[str, Any]:
        return {"total": 7, "items": [1, 2]}

    summary()

    (run,) = client.read_flow_runs()
    recorded = run.state
    assert recorded.result_ref.serializer == "json"
    header, payload = stored_file(recorded).read_bytes().split(b"\n", 1)
    assert json.loads(header)["serializer"] == "json"
    assert json.loads(payload) == {"total": 7, "items": [1, 2]}
    assert recorded.result() == {"total": 7, "items": [1, 2]}


def test_json_serializer_on_a_task_round_trips_its_result(client):
    @task(persist_result=True, result_serializer="json")
    def numbers() -> list[int]:
        return [4, 5]

    @flow
    def pipeline() -> list[int]:
        return numbers()

    assert pipeline() == [4, 5]
    (task_run,) = client.read_task_runs()
    assert task_run.state.result_ref.serializer == "json"
    assert task_run.state.result() == [4, 5]


def test_result_storage_writes_results_to_the_given_folder(client, tmp_path):
    storage = tmp_path / "my-results"

    @task(persist_result=True, result_storage=storage)
    def produce() -> str:
        return "in my folder"

    @flow(result_storage=storage)
    def pipeline() -> str:
        return produce()

    pipeline()

    (run,) = client.read_flow_runs()
    (task_run,) = client.read_task_runs(flow_run_id=run.id)
    for state in (run.state, task_run.state):
        assert Path(state.result_ref.storage) == storage
        assert stored_file(state).parent == storage and stored_file(state).exists()
    assert sorted(p.name for p in storage.iterdir()) == sorted(
        [run.state.result_ref.key, task_run.state.result_ref.key]
    )
    assert task_run.state.result() == "in my folder"


def test_an_unserializable_task_result_with_persist_result_fails_with_serialization_error(
    client,
):
    @task(persist_result=True, task_run_name="make-lock")
    def make_lock() -> Any:
        return threading.Lock()

    @flow
    def pipeline() -> Any:
        return make_lock()

    with pytest.raises(SerializationError) as raised:
        pipeline()

    # The caller gets anabranch's error naming the run and the fix, not pickle's TypeError.
    assert type(raised.value) is SerializationError
    assert isinstance(raised.value.__cause__, TypeError)  # pickle's error, chained
    innermost = raised.value.__traceback__
    while innermost.tb_next is not None:
        innermost = innermost.tb_next
    assert "cloudpickle" not in innermost.tb_frame.f_code.co_filename
    message = str(raised.value)
    assert "Task run 'make-lock'" in message
    assert "persist_result=False" in message
    (task_run,) = client.read_task_runs()
    assert task_run.state.type is StateType.FAILED
    assert "persist_result=False" in task_run.state.message
    (run,) = client.read_flow_runs()
    assert run.state.type is StateType.FAILED


def test_an_unserializable_flow_result_with_persist_result_fails_the_flow_run(client):
    @flow(persist_result=True, flow_run_name="lock-maker")
    def make_lock() -> Any:
        return threading.Lock()

    state = make_lock(return_state=True)

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert type(error) is SerializationError
    assert "Flow run 'lock-maker'" in str(error) and "persist_result=False" in str(error)
    with pytest.raises(SerializationError, match="persist_result=False"):
        make_lock()
    assert client.read_flow_runs(limit=1)[0].state.type is StateType.FAILED


def test_an_unserializable_flow_result_without_persist_result_is_kept_in_memory(client):
    lock = threading.Lock()

    @flow
    def hand_back_lock() -> Any:
        return lock

    state = hand_back_lock(return_state=True)

    assert state.is_completed()
    assert state.result() is lock
    assert state.result_ref is None
    (run,) = client.read_flow_runs()
    assert run.state.type is StateType.COMPLETED and run.state.result_ref is None
    warnings = [
        line.message
        for line in client.read_logs(flow_run_id=run.id)
        if line.level == logging.WARNING
    ]
    assert any("not persisted" in w and "persist_result=False" in w for w in warnings), warnings


# --- caching ---------------------------------------------------------------------------------


def by_x(context: Any, parameters: dict[str, Any]) -> str:
    return f"square-{parameters['x']}"


class Counted:
    """A task body that counts its executions and returns (x squared, execution number)."""

    def __init__(self) -> None:
        self.executions = 0

    def __call__(self, x: int) -> tuple[int, int]:
        self.executions += 1
        return x * x, self.executions


def cached_task(**options: Any) -> tuple[Any, Counted]:
    body = Counted()

    def square(x: int) -> tuple[int, int]:
        return body(x)

    return task(cache_key_fn=by_x, **options)(square), body


def test_a_second_call_with_the_same_cache_key_is_cached_and_does_not_execute(client):
    square, body = cached_task(cache_expiration=timedelta(hours=1))

    @flow
    def twice() -> dict[str, State]:
        return {"first": square(3, return_state=True), "second": square(3, return_state=True)}

    states = twice()
    first, second = states["first"], states["second"]

    assert body.executions == 1
    assert (first.name, second.name) == ("Completed", "Cached")
    assert second.is_completed()
    assert first.result() == second.result() == (9, 1)
    recorded = {r.name: r for r in client.read_task_runs()}
    assert recorded["square-1"].state.name == "Cached"
    assert recorded["square-1"].cache_key == "square-3"
    assert recorded["square-1"].run_count == 0  # never ran


def test_a_cached_result_serves_later_flow_runs_and_other_keys_still_execute(client):
    square, body = cached_task(cache_expiration=timedelta(hours=1))

    @flow
    def once(x: int) -> tuple[int, int]:
        return square(x)

    assert once(4) == (16, 1)
    assert once(4) == (16, 1)
    assert once(5) == (25, 2)
    assert body.executions == 2


def test_an_expired_cache_entry_re_executes_the_task(client):
    # An expiration of zero makes each entry expire the moment it is written.
    square, body = cached_task(cache_expiration=timedelta(0))

    @flow
    def twice() -> dict[str, State]:
        return {"first": square(3, return_state=True), "second": square(3, return_state=True)}

    states = twice()
    first, second = states["first"], states["second"]

    assert body.executions == 2
    assert (first.name, second.name) == ("Completed", "Completed")
    assert second.result() == (9, 2)


def test_refresh_cache_re_executes_and_replaces_the_cached_value(client):
    square, body = cached_task(cache_expiration=timedelta(hours=1))
    refreshing = square.with_options(refresh_cache=True)

    @flow
    def sequence() -> dict[str, State]:
        return {
            "first": square(2, return_state=True),
            "refreshed": refreshing(2, return_state=True),
            "after": square(2, return_state=True),
        }

    states = sequence()
    first, refreshed, after = states["first"], states["refreshed"], states["after"]

    assert body.executions == 2
    assert (first.name, refreshed.name, after.name) == ("Completed", "Completed", "Cached")
    assert refreshed.result() == (4, 2)
    assert after.result() == (4, 2)  # the refreshed value replaced the old entry


def test_a_cache_key_fn_returning_none_disables_caching_for_that_call(client):
    body = Counted()

    @task(cache_key_fn=lambda context, parameters: None)
    def square(x: int) -> tuple[int, int]:
        return body(x)

    @flow
    def twice() -> None:
        square(1)
        square(1)

    twice()
    assert body.executions == 2


def test_reading_an_unpersisted_result_from_the_store_raises_missing_result(client):
    @task(persist_result=False)
    def transient() -> str:
        return "only in memory"

    @flow
    def pipeline() -> str:
        return transient()

    assert pipeline() == "only in memory"

    (task_run,) = client.read_task_runs()
    recorded = client.read_task_run(task_run.id).state
    assert recorded.is_completed() and recorded.result_ref is None
    with pytest.raises(MissingResult, match="persist"):
        recorded.result()
