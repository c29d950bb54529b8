"""Real processes for the fault-injection tests, and what they left in the database.

- ``RestartableServer``: `anabranch server start` on a fixed port and database, killed with
  SIGKILL and started again on the same port and database.
- ``FlowProcess``: a flow script (or a worker) in a process of its own. The test reads
  its stdout line by line and injects the fault on a line the script prints (``READY 1``),
  never after a guessed sleep. A child that outlives its bound gets SIGABRT, so faulthandler
  writes every thread's stack to its stderr and the failure says where it hung.
- ``Store``: runs, states, log lines and slots read with SQLAlchemy straight from the
  database, never through an anabranch client, so reading can not deliver or repair anything.
- ``Lab``: what one test starts (databases, servers, processes), all removed at its end.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from anabranch.database import models
from anabranch.testing import wait_until
from server_harness import (
    ANABRANCH,
    POSTGRES_URL,
    Server,
    clean_env,
    postgres_reachable,
    start_server,
)

PYTHON = sys.executable
FLOWS = Path(__file__).with_name("flows")
# How long a child may take to print a line the test waits for (it imports anabranch first,
# on a machine whose two cores other tests share).
LINE_SECONDS = 60.0
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def quiet_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    A restarted server binds its port again after the outage; a port from the ephemeral
    range (what ``free_port`` hands out) could meanwhile be the local end of some outgoing
    connection on this machine, and the restart would fail for a reason unrelated to
    anabranch."""
    low, _ = _ephemeral_range()
    for _ in range(200):
        port = random.randrange(20_000, min(low, 32_768))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999


class RestartableServer:
    """`anabranch server start` on one port and database, for as many lives as the test
    needs; each life logs to a file of its own."""

    def __init__(self, database_url: str, folder: Path, **settings: str) -> None:
        self.database_url = database_url
        self.folder = folder
        self.settings = settings
        self.port = quiet_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.lives: list[Server] = []

    @property
    def current(self) -> Server | None:
        return self.lives[-1] if self.lives else None

    def start(self) -> None:
        """Start (again) on the same port and database; returns once /api/health answers."""
        folder = self.folder / f"life-{len(self.lives) + 1}"
        self.lives.append(start_server(self.database_url, folder, port=self.port, **self.settings))

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to its clients or the database."""
        server = self.current
        if server is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=30)

    def outage(self, seconds: float) -> None:
        """Kill the server, stay down ``seconds`` (the one fixed wait that is the point of
        the test), start it again."""
        self.kill()
        time.sleep(seconds)
        self.start()

    def stop(self) -> None:
        for server in self.lives:
            server.stop()

    def output(self) -> str:
        return "\n".join(
            f"--- server life {i} ---\n{server.output()[-4000:]}"
            for i, server in enumerate(self.lives, 1)
        )


class FlowProcess:
    """A flow script in a process of its own; stdout read line by line by a thread, stderr
    into a file (read it with ``stderr()``)."""

    def __init__(self, argv: list[str], env: dict[str, str], folder: Path, name: str) -> None:
        self.name = name
        self.stderr_path = folder / f"{name}.stderr"
        self.started = time.monotonic()
        # faulthandler: SIGABRT (see abort) writes every thread's stack to stderr.
        env = {**env, "PYTHONFAULTHANDLER": "1", "PYTHONUNBUFFERED": "1"}
        with self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                env=env, cwd=folder, text=True,
            )
        self.lines: list[str] = []
        self._unread: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            self._unread.put(line)
        self._unread.put(None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for(self, prefix: str, timeout: float = LINE_SECONDS) -> str:
        """The next stdout line starting with ``prefix``; fails if the process ends or
        ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._unread.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.abort()
                pytest.fail(
                    f"{self.name} did not print {prefix!r} within {timeout:g} s.\n{self.dump()}"
                )
            if line is None:
                self.process.wait(timeout=30)
                pytest.fail(
                    f"{self.name} exited with {self.process.returncode} before printing "
                    f"{prefix!r}.\n{self.dump()}"
                )
            if line.startswith(prefix):
                return line

    def exit_within(self, seconds: float) -> int | None:
        """The exit code if the process ends within ``seconds``, else None (still running)."""
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def finish(self, seconds: float, after: str = "") -> int:
        """The exit code; a process still running after ``seconds`` is a hang: its threads'
        stacks are dumped (SIGABRT) into the failure."""
        code = self.exit_within(seconds)
        if code is None:
            self.abort()
            pytest.fail(
                f"{self.name} was still running {seconds:g} s after "
                f"{after or 'the test began to wait for it'}: it hangs.\n{self.dump()}"
            )
        self._reader.join(timeout=10)
        return code

    def abort(self) -> None:
        """SIGABRT (faulthandler writes every thread's stack to stderr), then SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGABRT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._reader.join(timeout=10)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return "\n".join(self.lines)

    def message(self, prefix: str) -> dict[str, Any]:
        """The JSON after ``prefix`` on the first stdout line that starts with it."""
        for line in self.lines:
            if line.startswith(prefix + " "):
                return json.loads(line[len(prefix) + 1 :])
        pytest.fail(f"{self.name} never printed {prefix!r}.\n{self.dump()}")

    def dump(self, tail: int = 12_000) -> str:
        return (
            f"--- {self.name} stdout (last lines) ---\n" + "\n".join(self.lines[-30:])
            + f"\n--- {self.name} stderr (tail) ---\n" + self.stderr()[-tail:]
        )


def finish_all(processes: list[FlowProcess], seconds: float, after: str) -> list[int]:
    """Exit codes of ``processes``, all due within ``seconds``; those still running then
    are hangs (each aborted, the first one's stacks in the failure)."""
    deadline = time.monotonic() + seconds
    for process in processes:
        process.exit_within(max(0.0, deadline - time.monotonic()))
    hung = [process for process in processes if process.process.poll() is None]
    for process in hung:
        process.abort()
    if hung:
        pytest.fail(
            f"{len(hung)} of {len(processes)} processes were still running {seconds:g} s "
            f"after {after}: they hang.\n{hung[0].dump()}"
        )
    return [process.finish(0) for process in processes]


class Store:
    """Read-only views of one anabranch database, without anabranch's client code."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)

    def close(self) -> None:
        self.engine.dispose()

    def _rows(self, query: sa.Select) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def flow_runs(self) -> list[Any]:
        return self._rows(sa.select(models.flow_run))

    def task_runs(self) -> list[Any]:
        return self._rows(sa.select(models.task_run))

    def flow_run(self, run_id: uuid.UUID) -> Any:
        rows = self._rows(sa.select(models.flow_run).where(models.flow_run.c.id == run_id))
        return rows[0] if rows else None

    def log_messages(self, containing: str) -> list[str]:
        log = models.log
        query = sa.select(log.c.message).where(log.c.message.contains(containing))
        return [row.message for row in self._rows(query)]

    def slots_in_use(self, limit_name: str) -> float:
        """Slots of the limit held by leases that have not expired (what `concurrency-limit
        inspect` counts as active)."""
        limit, lease = models.concurrency_limit, models.concurrency_lease
        slot = models.concurrency_lease_slot
        query = (
            sa.select(sa.func.coalesce(sa.func.sum(slot.c.occupy), 0))
            .select_from(slot.join(lease, lease.c.id == slot.c.lease_id))
            .join(limit, limit.c.id == slot.c.limit_id)
            .where(limit.c.name == limit_name, lease.c.expires_at > datetime.now(timezone.utc))
        )
        return float(self._rows(query)[0][0])

    def leases_of(self, run_ids: Iterable[uuid.UUID]) -> list[Any]:
        lease = models.concurrency_lease
        return self._rows(sa.select(lease).where(lease.c.run_id.in_(list(run_ids))))


def by_state(runs: Iterable[Any]) -> dict[str | None, int]:
    counts: dict[str | None, int] = {}
    for run in runs:
        counts[run.state_type] = counts.get(run.state_type, 0) + 1
    return counts


def spooled_files(home: Path) -> list[Path]:
    """Files in the durable spool of the home (G2)."""
    spool = home / "spool"
    return sorted(p for p in spool.rglob("*") if p.is_file()) if spool.exists() else []


def require_postgres() -> None:
    problem = postgres_reachable()
    if problem is None:
        return
    message = f"PostgreSQL at {POSTGRES_URL} is unreachable ({problem})"
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; CI must run the PostgreSQL cases.")
    pytest.skip(message + "; set ANABRANCH_TEST_POSTGRES_URL to run these cases.")


@dataclass
class Cli:
    returncode: int
    stdout: str
    stderr: str


class Lab:
    """Databases, servers and processes of one test; ``close()`` ends and drops them all."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.servers: list[RestartableServer] = []
        self.processes: list[FlowProcess] = []
        self.stores: list[Store] = []
        self.databases: list[str] = []
        self._sqlite_files = 0

    def database(self, kind: str) -> str:
        """A fresh database: ``sqlite`` (a new file) or ``postgresql`` (a new database on
        the test server, dropped at the end)."""
        if kind == "sqlite":
            self._sqlite_files += 1
            path = self.folder / f"sqlite-{self._sqlite_files}" / "anabranch.db"
            path.parent.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{path}"
        require_postgres()
        name = f"anabranch_test_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        self.databases.append(name)
        return sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    def store(self, database_url: str) -> Store:
        store = Store(database_url)
        self.stores.append(store)
        return store

    def server(self, database_url: str, **settings: str) -> RestartableServer:
        server = RestartableServer(
            database_url, self.folder / f"server-{len(self.servers) + 1}", **settings
        )
        self.servers.append(server)
        server.start()
        return server

    def env(self, home: Path, **settings: str) -> dict[str, str]:
        """A clean environment (no ANABRANCH_* of this process) with ANABRANCH_HOME and
        ``settings`` (full variable names)."""
        home.mkdir(parents=True, exist_ok=True)
        return clean_env(ANABRANCH_HOME=str(home), **settings)

    def flow(
        self, script: str | Path, *args: str, env: dict[str, str], name: str = ""
    ) -> FlowProcess:
        """Run a flow script (a name in flows/ or a path) with ``args``."""
        path = script if isinstance(script, Path) else FLOWS / script
        name = name or f"{path.stem}-{len(self.processes) + 1}"
        return self.process([PYTHON, str(path), *args], env=env, name=name)

    def process(self, argv: list[str], *, env: dict[str, str], name: str) -> FlowProcess:
        """Any long-running process (a worker: ``[ANABRANCH, "worker", "start", ...]``)."""
        process = FlowProcess(argv, env, self.folder, name)
        self.processes.append(process)
        return process

    def cli(self, *args: str, env: dict[str, str], check: bool = True, timeout: float = 90) -> Cli:
        try:
            done = subprocess.run(
                [ANABRANCH, *args], env=env, cwd=self.folder, capture_output=True, text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"anabranch {' '.join(args)} was still running after {timeout:g} s: "
                        f"{exc.stdout!r} {exc.stderr!r}")
        if check and done.returncode != 0:
            pytest.fail(f"anabranch {' '.join(args)} failed ({done.returncode}):\n"
                        f"{done.stdout}\n{done.stderr}")
        return Cli(done.returncode, done.stdout, done.stderr)

    def close(self) -> None:
        for process in self.processes:
            process.kill()
        for server in self.servers:
            server.stop()
        for store in self.stores:
            store.close()
        if self.databases:
            admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                for name in self.databases:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


def terminate_backends(database_url: str) -> int:
    """pg_terminate_backend for every connection to the database but this one; how many."""
    name = sa.make_url(database_url).database
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            ).all()
    finally:
        admin.dispose()
    return sum(1 for (ok,) in rows if ok)


def records_summary(store: Store, marker: str = "faults-line") -> dict[str, Any]:
    """What the database holds: flow and task runs by state, and the marked log lines."""
    return {
        "flow_runs": by_state(store.flow_runs()),
        "task_runs": by_state(store.task_runs()),
        "log_lines": len(store.log_messages(marker)),
    }


def wait_for_every_record(
    store: Store,
    expected: dict[str, int],
    timeout: float = 30.0,
    marker: str = "faults-line",
    flow: FlowProcess | None = None,
) -> None:
    """Wait until the database holds exactly the ``expected`` runs, all Completed, and as
    many distinct ``marker`` log lines, each once; fails with what it holds instead (and
    with what ``flow``, the process that made them, printed)."""
    want = {
        "flow_runs": {"COMPLETED": expected["flow_runs"]},
        "task_runs": {"COMPLETED": expected["task_runs"]},
        "log_lines": expected.get("log_lines", 0),
    }

    def complete() -> bool:
        return records_summary(store, marker) == want

    try:
        wait_until(complete, timeout=timeout, what="every record")
    except AssertionError:
        held = records_summary(store, marker)
        crashed = [
            (run.name, run.state_message) for run in store.flow_runs()
            if run.state_type != "COMPLETED"
        ][:3]
        pytest.fail(
            f"After {timeout:g} s the database holds {held}, not {want}. "
            f"Flow runs not Completed (first 3): {crashed}\n{flow.dump() if flow else ''}"
        )
    lines = store.log_messages(marker)
    assert len(set(lines)) == len(lines), "a log line was stored twice"


def most_at_once(runs: Iterable[Any]) -> int:
    """The most runs Running at one instant, from their start and end times (an end at the
    same instant as a start comes first)."""
    events = []
    for run in runs:
        if run.start_time is not None and run.end_time is not None:
            events += [(run.start_time, 1), (run.end_time, -1)]
    most = current = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        current += step
        most = max(most, current)
    return most
