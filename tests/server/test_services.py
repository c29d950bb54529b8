"""What the server does by itself: crash runs that stopped heartbeating; and replicas on one
PostgreSQL database, which share everything through it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from anabranch import _clock
from anabranch.schemas import FlowRun, RecordBatch, State, StateType, TaskRun
from anabranch.testing import wait_until
from server_harness import clean_env, start_server

CONTENDER = Path(__file__).with_name("contender.py")


def test_a_running_flow_run_whose_heartbeats_stopped_is_crashed(tmp_path: Path) -> None:
    server = start_server(
        f"sqlite:///{tmp_path / 'zombies.db'}", tmp_path, ANABRANCH_HEARTBEAT_SECONDS="0.2"
    )
    try:
        client = server.client()
        now = _clock.now()
        running = State(type=StateType.RUNNING, name="Running", timestamp=now)
        silent = FlowRun(
            name="silent", flow_name="zombie", state=running, heartbeat=now - timedelta(hours=1)
        )
        task_run = TaskRun(name="t-0", task_key="t", flow_run_id=silent.id, state=running)
        client.write_batch(RecordBatch(flow_runs=[silent], task_runs=[task_run]))

        wait_until(lambda: client.read_flow_run(silent.id).state.type is StateType.CRASHED)
        crashed = client.read_flow_run(silent.id).state
        assert "No heartbeat since" in (crashed.message or "")
        assert client.read_task_run(task_run.id).state.type is StateType.CRASHED
    finally:
        server.stop()


def test_two_replicas_on_one_postgresql_database_share_runs_and_limits(
    new_database: Callable[[str], str], tmp_path: Path
) -> None:
    database_url = new_database("postgresql")
    replicas = [start_server(database_url, tmp_path / f"replica-{i}") for i in range(2)]
    try:
        first, second = (replica.client() for replica in replicas)
        limit, name = 2, f"replicated-{uuid.uuid4().hex[:6]}"
        first.create_concurrency_limit(name, limit)
        assert second.read_concurrency_limit(name).limit == limit

        counter = tmp_path / "counter.json"
        counter.write_text("[0, 0]")
        workers = [
            subprocess.Popen(
                [sys.executable, str(CONTENDER), str(counter), name, mode],
                env=clean_env(
                    ANABRANCH_API_URL=replica.url, ANABRANCH_HOME=str(tmp_path / "home")
                ),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for replica in replicas
            for mode in ("tags", "context")
        ]
        outcomes = [worker.communicate(timeout=180) for worker in workers]

        assert [w.returncode for w in workers] == [0] * 4, outcomes
        in_use, peak = json.loads(counter.read_text())
        assert in_use == 0 and 1 <= peak <= limit
        runs = first.read_flow_runs(flow_name="contender")
        assert len(runs) == 4
        assert {r.id for r in second.read_flow_runs(flow_name="contender")} == {r.id for r in runs}
    finally:
        for replica in replicas:
            replica.stop()


KILLED_HOLDER = """
import sys, threading
from anabranch import flow
from anabranch.concurrency.sync import concurrency

@flow
def holds_the_database():
    with concurrency("db"):
        sys.stdout.write("HOLDING\\n")
        sys.stdout.flush()
        threading.Event().wait(300)

holds_the_database()
"""


def test_a_killed_flow_run_process_is_crashed_and_its_slots_freed_by_the_server(
    tmp_path: Path,
) -> None:
    # Leases last 60 s here: only the server's zombie detection can free the slot sooner.
    server = start_server(
        f"sqlite:///{tmp_path / 'killed.db'}", tmp_path, ANABRANCH_HEARTBEAT_SECONDS="0.3"
    )
    script = tmp_path / "holder.py"
    script.write_text(KILLED_HOLDER)
    env = clean_env(
        ANABRANCH_API_URL=server.url,
        ANABRANCH_HOME=str(tmp_path / "holder-home"),
        ANABRANCH_HEARTBEAT_SECONDS="0.3",
        ANABRANCH_CONCURRENCY_LEASE_SECONDS="60",
    )
    holder = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        client = server.client()
        client.create_concurrency_limit("db", 1)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "HOLDING"
        assert client.read_concurrency_limit("db").active_slots == 1
        wait_until(lambda: len(client.read_flow_runs(flow_name="holds-the-database")) == 1)
        (run,) = client.read_flow_runs(flow_name="holds-the-database")
        killed_at = time.monotonic()
        holder.kill()
        holder.wait(timeout=30)

        wait_until(lambda: client.read_flow_run(run.id).state.type is StateType.CRASHED)
        wait_until(lambda: client.read_concurrency_limit("db").active_slots == 0)
        assert time.monotonic() - killed_at < 60
        assert "No heartbeat since" in (client.read_flow_run(run.id).state.message or "")
    finally:
        holder.kill()
        server.stop()
