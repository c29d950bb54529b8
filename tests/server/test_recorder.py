"""The background writer through a real server: a refused state change is warned about once
and never resent, and a server that stays down for the retry budget costs one budget, after
which the records wait in the spool, with one message naming the server, until a server
answers again."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from anabranch.client.http import HTTPClient
from anabranch.client.recorder import Recorder
from anabranch.client.spool import Spool
from anabranch.orchestration.transitions import refusal
from anabranch.schemas import FlowRun, LogRecord, State, StateType, TaskRun
from server_harness import ANABRANCH, Server, clean_env, free_port, start_server

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


def test_a_batch_a_dead_server_never_took_waits_in_the_spool_until_a_server_takes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    spool = Spool(tmp_path / "home", url)
    transport = HTTPClient(url, retry_seconds=0.2, first_delay=0.01)
    recorder = Recorder(lambda: transport, spool=spool)
    flow = FlowRun(name="lonely", flow_name="etl")
    recorder.record_flow_run(flow, at(0, StateType.RUNNING))
    tasks = [TaskRun(name=f"t-{i}", task_key="etl.t", flow_run_id=flow.id) for i in range(2)]
    for task in tasks:
        recorder.record_task_run(task, at(0, StateType.COMPLETED))
    recorder.record_log(LogRecord(flow_run_id=flow.id, name="f", level=20, message="hi"))

    assert recorder.flush()
    recorder.record_flow_run(*moved(flow, at(1, StateType.COMPLETED)))
    assert recorder.flush()  # at once: the server is known to be away
    recorder.close()

    lines = [line for line in capsys.readouterr().err.splitlines() if "anabranch:" in line]
    assert len(lines) == 1, lines
    assert f"the anabranch server at {url} did not answer" in lines[0]
    assert str(spool.folder) in lines[0] and "delivered when it answers again" in lines[0]
    assert "the next anabranch process" in lines[0]
    assert spool.waiting() == 2
    assert oct(spool.folder.stat().st_mode & 0o777) == "0o700"

    server = start_server(f"sqlite:///{tmp_path / 'late.db'}", tmp_path / "server", port=port)
    try:
        assert spool.deliver(server.client().write_batch) == 2
        reader = server.client()
        assert reader.read_flow_run(flow.id).state.type is StateType.COMPLETED
        assert {run.id for run in reader.read_task_runs(flow_run_id=flow.id)} == {
            task.id for task in tasks
        }
        assert [log.message for log in reader.read_logs(flow_run_id=flow.id)] == ["hi"]
    finally:
        server.stop()
    assert not spool.folder.exists()


@pytest.mark.slow
def test_a_flow_run_against_a_dead_server_ends_within_the_budget_and_is_delivered_later(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    home = tmp_path / "home"
    env = clean_env(
        ANABRANCH_API_URL=url, ANABRANCH_HOME=str(home), ANABRANCH_CLIENT_RETRY_SECONDS="2"
    )
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
                get_run_logger().info("read later")
                return sum(double.map(range(n)).result())

            print(orphan(50))
            """
        )
    )
    started = time.monotonic()

    finished = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )

    elapsed = time.monotonic() - started
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == str(sum(2 * x for x in range(50)))
    said = [line for line in finished.stderr.splitlines() if line.startswith("anabranch:")]
    assert any(f"the anabranch server at {url} did not answer" in line for line in said), said
    assert not any("lost" in line for line in said), said
    # One retry budget (2 s here), with room for a slow machine.
    assert elapsed < 60, elapsed

    server = start_server(f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "server", port=port)
    try:
        listed = subprocess.run(
            [ANABRANCH, "flow-run", "ls", "--output", "json"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        reader = server.client()
        (run,) = reader.read_flow_runs()
        assert run.state.type is StateType.COMPLETED
        tasks = reader.read_task_runs(flow_run_id=run.id)
        assert len(tasks) == 50 and {t.state.type for t in tasks} == {StateType.COMPLETED}
        assert "read later" in [log.message for log in reader.read_logs(flow_run_id=run.id)]
    finally:
        server.stop()
    assert not [p for p in (home / "spool").rglob("*") if ".batch.json" in p.name]
