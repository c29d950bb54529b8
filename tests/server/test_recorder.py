"""The background writer through a real server: a refused state change is warned about once
and never resent, and a server that is down costs one retry budget, not a multiple of it,
before the records are given up with one message naming the server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from anabranch.client.http import RETRY_BUDGET, HTTPClient
from anabranch.client.recorder import Recorder
from anabranch.orchestration.transitions import refusal
from anabranch.schemas import FlowRun, LogRecord, State, StateType, TaskRun
from server_harness import Server, clean_env, free_port

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def at(seconds: float, type_: StateType) -> State:
    return State(type=type_, name=type_.value.title(), timestamp=T0 + timedelta(seconds=seconds))


def moved(run: FlowRun, state: State) -> tuple[FlowRun, State]:
    """The run in ``state``, as the engine records a transition: the snapshot and the state."""
    run.state = state
    return run, state


def test_a_refused_state_change_is_warned_about_once_and_never_resent(
    server: Server, client: HTTPClient, capsys: pytest.CaptureFixture[str]
) -> None:
    transport = server.client()
    recorder = Recorder(lambda: transport)
    done = FlowRun(name=f"done-{uuid.uuid4().hex[:6]}", flow_name="etl", created=T0)
    recorder.record_flow_run(*moved(done, at(1, StateType.COMPLETED)))
    assert recorder.flush()
    requests = transport.statistics()["requests"]
    other = FlowRun(name=f"other-{uuid.uuid4().hex[:6]}", flow_name="etl", created=T0)

    recorder.record_flow_run(*moved(done, at(2, StateType.RUNNING)))
    recorder.record_flow_run(*moved(other, at(2, StateType.RUNNING)))
    assert recorder.flush()
    recorder.close()

    warnings = [line for line in capsys.readouterr().err.splitlines() if "anabranch:" in line]
    assert len(warnings) == 1, warnings
    assert "warning" in warnings[0] and str(done.id) in warnings[0]
    assert refusal(StateType.COMPLETED, StateType.RUNNING) in warnings[0]
    assert transport.statistics()["requests"] == requests + 1
    assert client.read_flow_run(done.id).state.type is StateType.COMPLETED
    assert client.read_flow_run(other.id).state.type is StateType.RUNNING


def test_a_batch_a_dead_server_never_took_is_lost_with_one_message_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    transport = HTTPClient(url, attempts=3, first_delay=0.01)
    recorder = Recorder(lambda: transport)
    flow = FlowRun(name="lonely", flow_name="etl")
    recorder.record_flow_run(flow, at(0, StateType.RUNNING))
    for i in range(2):
        recorder.record_task_run(
            TaskRun(name=f"t-{i}", task_key="etl.t", flow_run_id=flow.id),
            at(0, StateType.COMPLETED),
        )
    recorder.record_log(LogRecord(flow_run_id=flow.id, name="f", level=20, message="hi"))

    assert recorder.flush()
    recorder.close()

    lines = [line for line in capsys.readouterr().err.splitlines() if "anabranch:" in line]
    assert len(lines) == 1, lines
    assert "lost the records of 1 flow run and 2 task runs (4 records, 1 log line)" in lines[0]
    assert f"the anabranch server at {url} did not store them" in lines[0]
    assert "did not answer POST /batches" in lines[0]
    # The HTTP client's own attempts only: the recorder does not retry on top of them.
    assert transport.statistics()["requests"] == 3


@pytest.mark.slow
def test_a_flow_run_against_a_dead_server_ends_with_one_message_within_the_budget(
    tmp_path: Path,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    script = tmp_path / "dead.py"
    script.write_text(
        textwrap.dedent(
            """
            from anabranch import flow, get_run_logger, task

            @task
            def double(x):
                return 2 * x

            @flow
            def orphan(n: int) -> int:
                get_run_logger().info("nobody will read this")
                return sum(double.map(range(n)).result())

            print(orphan(50))
            """
        )
    )
    started = time.monotonic()

    finished = subprocess.run(
        [sys.executable, str(script)],
        env=clean_env(ANABRANCH_API_URL=url, ANABRANCH_HOME=str(tmp_path / "home")),
        capture_output=True,
        text=True,
        timeout=120,
    )

    elapsed = time.monotonic() - started
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == str(sum(2 * x for x in range(50)))
    lost = [line for line in finished.stderr.splitlines() if line.startswith("anabranch: lost")]
    assert len(lost) == 1, finished.stderr
    assert "the records of 1 flow run and 50 task runs" in lost[0]
    assert f"the anabranch server at {url} did not store them" in lost[0]
    assert "`anabranch server start`" in lost[0]
    # One retry budget (8 attempts, 12.7 s of back-off), with room for a slow machine.
    assert elapsed < min(60.0, 2 * RETRY_BUDGET + 20), elapsed
