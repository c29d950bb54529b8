"""What server mode costs: a flow's wall time through `anabranch server start`, and the state
transitions per second the server takes from concurrent writers.

Usage: python benchmarks/bench_server.py [--repeats 5] [--n-tasks 1000] [--writers 8]
       [--batch-size 100] [--batches 60] [--seconds 4] [--timeout 300] [--json]

Stores: ``sqlite`` (a SQLite file in a fresh temporary ANABRANCH_HOME) and ``postgresql`` (a
throwaway database ``anabranch_bench_<hex>`` created on the local server at
``postgresql+psycopg://postgres@127.0.0.1:5432`` and dropped afterwards; skipped, and said so,
when PostgreSQL does not answer). Each server is a real ``anabranch server start`` on a free
loopback port, with every inherited ``ANABRANCH_*`` variable removed but ANABRANCH_HOME and
ANABRANCH_DATABASE_URL; it is ready when ``GET /api/health`` answers 200 (within 60 s), and is
stopped with SIGTERM (SIGKILL 15 s later if still alive).

Measurements:

- ``flow``: a flow with ``ThreadPoolTaskRunner(max_workers=10)`` submits ``--n-tasks`` no-op
  tasks and collects each ``.result()``. Each repetition is a fresh process on a fresh store
  (and, through a server, a fresh server): it runs the flow once to warm up, then times one
  call plus ``flush_all()`` (so every record has reached the store), then checks, untimed,
  that the store holds all the task runs. Median of ``--repeats``, for ``embedded`` (SQLite,
  in process), ``server_sqlite`` and ``server_postgresql``; the figure is server / embedded.
- ``writers``: ``--writers`` processes each build ``--batches`` RecordBatches of
  ``--batch-size`` task runs with 3 states each (Pending, Running, Completed) before the clock
  starts, then, released together, send them through ``HTTPClient.write_batch`` until they run
  out or ``--seconds`` have passed. The figure is their task-run state transitions per second
  (from the first writer's start to the last one's end); the task runs the server then holds
  are counted, untimed.

``run()`` returns every figure as a dict (for ``benchmarks/run.py``); ``main()`` prints them
against the targets: server within 2x of embedded for the flow, more than 2,000 state
transitions per second on PostgreSQL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
FLOW_RATIO_TARGET = 2.0
WRITES_TARGET_PER_S = 2000.0
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
SERVER_READY_S = 60.0
SERVER_STOP_S = 15.0
BACKENDS = ("sqlite", "postgresql")
FLOW_MODES = ("embedded", "server_sqlite", "server_postgresql")


# ---- inside a measurement process -----------------------------------------------------------


def measure_flow(n_tasks: int) -> dict[str, Any]:
    """One warm-up call, then one timed call (plus flushing its records), then a count."""
    from anabranch import flow, task
    from anabranch.client import get_client
    from anabranch.client.recorder import flush_all
    from anabranch.context import FlowRunContext
    from anabranch.task_runners import ThreadPoolTaskRunner

    run_ids: list[uuid.UUID] = []

    @task(name="bench-server-noop")
    def noop(i: int) -> int:
        return i

    @flow(name="bench-server-tasks", task_runner=ThreadPoolTaskRunner(max_workers=10))
    def wide(n: int) -> int:
        ctx = FlowRunContext.get()
        assert ctx is not None
        run_ids.append(ctx.flow_run.id)
        futures = [noop.submit(i) for i in range(n)]
        return sum(f.result() for f in futures)

    wide(n_tasks)  # warm-up: imports, migrations, connections, the server's first requests
    flush_all()
    started = time.perf_counter()
    total = wide(n_tasks)
    flush_all()
    elapsed = time.perf_counter() - started
    if total != sum(range(n_tasks)):
        raise RuntimeError(f"the flow returned {total}")
    client = get_client()
    recorded = len(client.read_task_runs(flow_run_id=run_ids[-1]))
    state = client.read_flow_run(run_ids[-1]).state
    return {
        "n_tasks": n_tasks,
        "elapsed_s": elapsed,
        "recorded": recorded,
        "flow_state": state.name if state is not None else None,
        "client": type(client).__name__,
    }


def _build_batches(batch_size: int, count: int) -> tuple[uuid.UUID, list[Any]]:
    from datetime import timedelta

    from anabranch import _clock
    from anabranch.schemas import RecordBatch, State, StateRecord, StateType, TaskRun

    flow_run_id = uuid.uuid4()
    steps = [
        (StateType.PENDING, "Pending"),
        (StateType.RUNNING, "Running"),
        (StateType.COMPLETED, "Completed"),
    ]
    batches = []
    for _ in range(count):
        runs, states = [], []
        for i in range(batch_size):
            now = _clock.now()
            run = TaskRun(
                name=f"t-{i}", task_key="bench.t", flow_run_id=flow_run_id, parameters={"i": i}
            )
            for k, (state_type, name) in enumerate(steps):
                state = State(type=state_type, name=name, timestamp=now + timedelta(microseconds=k))
                states.append(StateRecord(run_id=run.id, state=state))
            run.state = state
            runs.append(run)
        batches.append(RecordBatch(task_runs=runs, states=states))
    return flow_run_id, batches


def _writer(
    api_url: str, seconds: float, batch_size: int, count: int, ready: Any, go: Any, out: Any
) -> None:
    from anabranch.client.http import HTTPClient

    client = HTTPClient(api_url)
    flow_run_id, batches = _build_batches(batch_size, count)
    client.read_flow_runs(limit=1)  # open the connection
    ready.put(1)
    if not go.wait(timeout=300):
        return
    written, sent, started = 0, 0, time.monotonic()
    ran_out = True  # unless the time limit stops it first
    for batch in batches:
        if time.monotonic() - started > seconds:
            ran_out = False
            break
        client.write_batch(batch)
        written += len(batch.states)
        sent += 1
    finished = time.monotonic()
    ran_out = ran_out and finished - started < seconds
    out.put((str(flow_run_id), written, sent, started, finished, ran_out))


def measure_writers(
    api_url: str, writers: int, batch_size: int, batches: int, seconds: float
) -> dict[str, Any]:
    from anabranch.client.http import HTTPClient

    context = multiprocessing.get_context("spawn")
    ready, out, go = context.Queue(), context.Queue(), context.Event()
    procs = [
        context.Process(
            target=_writer, args=(api_url, seconds, batch_size, batches, ready, go, out)
        )
        for _ in range(writers)
    ]
    try:
        for proc in procs:
            proc.start()
        for _ in procs:
            ready.get(timeout=180)  # building the batches, on a shared machine
        go.set()
        results = [out.get(timeout=seconds + 120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
    total = sum(r[1] for r in results)
    elapsed = max(r[4] for r in results) - min(r[3] for r in results)
    with HTTPClient(api_url) as client:
        stored_runs = sum(len(client.read_task_runs(flow_run_id=uuid.UUID(r[0]))) for r in results)
    return {
        "writers": writers,
        "batch_size": batch_size,
        "batches_built": batches,
        "batches_sent": [r[2] for r in results],
        "ran_out": sum(r[5] for r in results),
        "states": total,
        "task_runs": total // 3,
        "stored_task_runs": stored_runs,
        "elapsed_s": elapsed,
        "states_per_s": total / elapsed,
        "task_runs_per_s": total / 3 / elapsed,
    }


# ---- stores, servers and child processes ----------------------------------------------------


def _clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANABRANCH_")}
    env.update(settings)
    return env


def postgres_unreachable() -> str | None:
    """Why the local PostgreSQL can not be used, or None if it answers."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc})"
    try:
        with psycopg.connect(**PG_ADMIN, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines() or [type(exc).__name__]
        return f"PostgreSQL at {PG_ADMIN['host']}:{PG_ADMIN['port']} does not answer: {reason[0]}"
    return None


@contextlib.contextmanager
def _store(backend: str, home: Path) -> Iterator[str]:
    """A fresh, empty store's database URL; a PostgreSQL database is dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{home / 'anabranch.db'}"
        return
    import psycopg

    name = f"anabranch_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(**PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_URL.format(name=name)
    finally:
        with psycopg.connect(**PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_command(port: int) -> list[str]:
    script = Path(sys.executable).parent / "anabranch"
    base = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from anabranch.cli import main; main()"]
    )
    return base + [
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def _server(database_url: str, home: Path) -> Iterator[str]:
    """A real `anabranch server start` on ``database_url``; yields its API URL."""
    env = _clean_env(ANABRANCH_HOME=str(home), ANABRANCH_DATABASE_URL=database_url)
    for attempt in range(3):  # the free port may be taken before the server binds it
        port = _free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        log = home / f"server-{port}.log"
        with open(log, "wb") as sink:
            proc = subprocess.Popen(
                _server_command(port),
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=home,
                stdin=subprocess.DEVNULL,
            )
        try:
            deadline = time.monotonic() + SERVER_READY_S
            while not _healthy(api_url):
                if proc.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the server was not healthy after {SERVER_READY_S:g} s: {_tail(log)}"
                    )
                time.sleep(0.05)
            else:
                yield api_url
                return
            if "in use" not in _tail(log, 20) or attempt == 2:
                raise RuntimeError(f"the server exited ({proc.returncode}): {_tail(log)}")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=SERVER_STOP_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


def _child(args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> dict[str, Any]:
    """Run this script with ``args`` and return the JSON it prints last."""
    return run_for_json(HERE, args, env, cwd, timeout)


def run_for_json(
    script: Path, args: list[str], env: dict[str, str], cwd: Path, timeout: float
) -> dict[str, Any]:
    """Run a benchmark ``script`` in a process of its own and return the JSON object it
    prints last, or ``{"error": ...}`` saying why there is none."""
    try:
        proc = subprocess.run(
            [sys.executable, str(script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=cwd,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": "no result printed"}
    return dict(json.loads(lines[-1]))


def _flow_once(mode: str, n_tasks: int, timeout: float) -> dict[str, Any]:
    """One repetition: a fresh home, store (and server) and process."""
    with tempfile.TemporaryDirectory(prefix="anabranch-bench-") as folder:
        home = Path(folder)
        client_home = home / "client"
        client_home.mkdir()
        args = ["--measure", "flow", "--n-tasks", str(n_tasks)]
        if mode == "embedded":
            env = _clean_env(ANABRANCH_HOME=str(client_home))
            return _child(args, env, client_home, timeout)
        backend = mode.removeprefix("server_")
        try:
            with _store(backend, home) as database_url, _server(database_url, home) as api_url:
                env = _clean_env(ANABRANCH_HOME=str(client_home), ANABRANCH_API_URL=api_url)
                return _child(args, env, client_home, timeout)
        except Exception as exc:
            return {"error": repr(exc)}


def run_flow(mode: str, n_tasks: int, repeats: int, timeout: float) -> dict[str, Any]:
    runs = [_flow_once(mode, n_tasks, timeout) for _ in range(repeats)]
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        return {"error": errors[0], "errors": len(errors), "runs": runs}
    times = [r["elapsed_s"] for r in runs]
    return {
        "n_tasks": n_tasks,
        "repeats": repeats,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "times_s": times,
        "recorded": min(r["recorded"] for r in runs),
        "flow_states": sorted({str(r["flow_state"]) for r in runs}),
        "client": runs[0]["client"],
    }


def run_writers(
    backend: str, writers: int, batch_size: int, batches: int, seconds: float, timeout: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="anabranch-bench-") as folder:
        home = Path(folder)
        client_home = home / "client"
        client_home.mkdir()
        try:
            with _store(backend, home) as database_url, _server(database_url, home) as api_url:
                args = [
                    "--measure",
                    "writers",
                    "--api-url",
                    api_url,
                    "--writers",
                    str(writers),
                    "--batch-size",
                    str(batch_size),
                    "--batches",
                    str(batches),
                    "--seconds",
                    str(seconds),
                ]
                env = _clean_env(ANABRANCH_HOME=str(client_home))
                return _child(args, env, client_home, timeout)
        except Exception as exc:
            return {"error": repr(exc)}


# ---- the driver -----------------------------------------------------------------------------


def run(
    timeout: float = 300,
    repeats: int = 5,
    n_tasks: int = 1000,
    writers: int = 8,
    batch_size: int = 100,
    batches: int = 60,
    seconds: float = 4.0,
) -> dict[str, Any]:
    """Both measurements on every store; ``timeout`` bounds each child process."""
    figures: dict[str, Any] = {"flow": {}, "writers": {}, "cpus": os.cpu_count()}
    figures["load_before"] = list(os.getloadavg())
    unreachable = postgres_unreachable()
    if unreachable:
        figures["postgresql_skipped"] = unreachable
    for mode in FLOW_MODES:
        if mode.endswith("postgresql") and unreachable:
            figures["flow"][mode] = {"skipped": unreachable}
            continue
        figures["flow"][mode] = run_flow(mode, n_tasks, repeats, timeout)
    for backend in BACKENDS:
        if backend == "postgresql" and unreachable:
            figures["writers"][backend] = {"skipped": unreachable}
            continue
        figures["writers"][backend] = run_writers(
            backend, writers, batch_size, batches, seconds, timeout
        )
    figures["load_after"] = list(os.getloadavg())
    return figures


def report(figures: dict[str, Any]) -> str:
    from workloads import table

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    lines = []
    if "load_before" in figures:
        lines.append(
            f"{figures.get('cpus', '?')} CPUs; 1-minute load average "
            f"{figures['load_before'][0]:.1f} before, {figures['load_after'][0]:.1f} after"
        )
    if "postgresql_skipped" in figures:
        lines.append(f"PostgreSQL skipped: {figures['postgresql_skipped']}")
    flows = figures.get("flow", {})
    embedded = flows.get("embedded", {})
    base = embedded.get("median_s")
    rows = []
    for mode in FLOW_MODES:
        res = flows.get(mode)
        if res is None:
            continue
        label = {
            "embedded": "embedded SQLite",
            "server_sqlite": "server, SQLite",
            "server_postgresql": "server, PostgreSQL",
        }[mode]
        if "skipped" in res:
            rows.append([label, "skipped", "-", "-", "-", "-", "-"])
            continue
        if "error" in res:
            rows.append([label, "ERROR", "-", "-", "-", "-", "-"])
            lines.append(f"{label}: ERROR {res['error']}")
            continue
        recorded = f"{res['recorded']}/{res['n_tasks']}"
        if res["recorded"] < res["n_tasks"]:
            recorded += " MISSING"
        if mode == "embedded" or base is None:
            ratio, target = "1.00x" if mode == "embedded" else "-", "-"
        else:
            value = res["median_s"] / base
            ratio = f"{value:.2f}x"
            target = f"≤ {FLOW_RATIO_TARGET:g}x: {verdict(value <= FLOW_RATIO_TARGET)}"
        rows.append(
            [
                label,
                f"{res['median_s']:.3f}",
                f"{res['min_s']:.3f}",
                f"{res['max_s']:.3f}",
                recorded,
                ratio,
                target,
            ]
        )
    if rows:
        first = next((r for r in flows.values() if "n_tasks" in r), {})
        lines.append(
            f"flow of {first.get('n_tasks', '?')} no-op tasks, ThreadPoolTaskRunner(10): median "
            f"of {first.get('repeats', '?')} fresh processes, each on a fresh store (and "
            "server), timing one call + flush_all() after a warm-up"
        )
        lines.append(
            table(
                [
                    "store",
                    "median s",
                    "min s",
                    "max s",
                    "task runs recorded",
                    "vs embedded",
                    "target",
                ],
                rows,
            )
        )
    rows = []
    for backend in BACKENDS:
        res = figures.get("writers", {}).get(backend)
        if res is None:
            continue
        label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[backend]
        if "skipped" in res or "error" in res:
            rows.append([label, "skipped" if "skipped" in res else "ERROR"] + ["-"] * 4)
            if "error" in res:
                lines.append(f"writers on {label}: ERROR {res['error']}")
            continue
        stored = f"{res['stored_task_runs']}/{res['task_runs']}"
        if res["stored_task_runs"] < res["task_runs"]:
            stored += " MISSING"
        target = "-"
        if backend == "postgresql":
            target = (
                f"> {WRITES_TARGET_PER_S:,.0f}/s: "
                f"{verdict(res['states_per_s'] > WRITES_TARGET_PER_S)}"
            )
        rows.append(
            [
                label,
                f"{res['states_per_s']:,.0f}",
                f"{res['task_runs_per_s']:,.0f}",
                f"{res['states']:,} in {res['elapsed_s']:.1f} s"
                + (f" ({res['ran_out']} writers ran out of batches)" if res["ran_out"] else ""),
                stored,
                target,
            ]
        )
    if rows:
        first = next((r for r in figures.get("writers", {}).values() if "writers" in r), {})
        lines.append(
            f"{first.get('writers', '?')} writer processes sending batches of "
            f"{first.get('batch_size', '?')} task runs x 3 states (built before timing) "
            "to one server"
        )
        lines.append(
            table(
                [
                    "server on",
                    "states/s",
                    "task runs/s",
                    "states written",
                    "task runs stored",
                    "target",
                ],
                rows,
            )
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="processes per flow figure")
    parser.add_argument("--n-tasks", type=int, default=1000)
    parser.add_argument("--writers", type=int, default=8, help="writer processes")
    parser.add_argument("--batch-size", type=int, default=100, help="task runs per batch")
    parser.add_argument("--batches", type=int, default=60, help="batches built per writer")
    parser.add_argument("--seconds", type=float, default=4.0, help="writers' time limit")
    parser.add_argument("--timeout", type=float, default=300.0, help="per child process")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--measure", choices=("flow", "writers"), help=argparse.SUPPRESS)
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure == "flow":
        print(json.dumps(measure_flow(args.n_tasks)))
        return 0
    if args.measure == "writers":
        result = measure_writers(
            args.api_url, args.writers, args.batch_size, args.batches, args.seconds
        )
        print(json.dumps(result))
        return 0
    figures = run(
        args.timeout,
        args.repeats,
        args.n_tasks,
        args.writers,
        args.batch_size,
        args.batches,
        args.seconds,
    )
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
