"""What events cost and how fast automations act on them: the 1,000-task workload with the
``run_state_event`` trigger on and off, the events the store derives per second, and the
delay from a flow run's Failed state to a webhook's arrival.

Usage: python benchmarks/events.py [--repeats 5] [--server-repeats 4] [--latency-runs 40]
       [--backends sqlite postgresql] [--only flow latency writer] [--timeout 120] [--json]

Stores: every store starts as a copy of a template migrated once per run (SQLite: a file
copied into a fresh home; PostgreSQL: ``CREATE DATABASE ... TEMPLATE`` on the local server at
127.0.0.1:5432 as user postgres, a throwaway database per repetition, dropped afterwards;
skipped, and said so, when PostgreSQL does not answer). The template for events OFF is the
same migrated store with ``DROP TRIGGER run_state_event`` (``... ON run_state`` on
PostgreSQL). Servers are real ``anabranch server start`` processes, started and stopped as in
``bench_server.py`` (defaults: no inherited ANABRANCH_* setting).

Measurements:

- ``flow``: a flow with ``ThreadPoolTaskRunner(max_workers=10)`` submits ``--n-tasks`` no-op
  tasks and collects each ``.result()`` (the ``tasks`` workload of ``workloads.py``), in a
  fresh process on a fresh store: embedded SQLite (``--repeats`` per side), and through a
  fresh server on SQLite and on PostgreSQL (``--server-repeats`` per side). Events ON and OFF
  alternate (ON, OFF, then OFF, ON, ...). Each process runs a warm-up call of 50 tasks, then
  times one call plus ``flush_all()`` (so every record, and with it every event, is stored:
  the trigger runs in the writer) with ``perf_counter`` and ``getrusage(RUSAGE_SELF)``; a
  server's CPU (``/proc/<pid>/stat``, itself and its children) and, on PostgreSQL, that of
  its database's backends are taken over the same interval. After the call, untimed: the
  task runs stored (must be all) and the event rows added during the call (a SQL count:
  ~3 per task run plus the flow run's own). Figures: medians and ON against OFF.
- ``events/s``: the event rows the timed call added / its wall time (events ON).
- ``latency``: a fresh server per store (default ANABRANCH_AUTOMATIONS_POLL_SECONDS, 0.25 s)
  with one automation (expect ``anabranch.flow-run.Failed``, ``CallWebhook`` to the tests'
  ``HTTPReceiver`` on loopback). One process, through the server (ANABRANCH_API_URL), runs
  one failing flow and waits for its webhook (warm-up), then ``--latency-runs`` failing flow
  runs one after another, each after a random pause of 0-2 poll intervals (so the runs do not
  lock onto the server's poll phase) and each waiting for its webhook (10 s at most). After
  the runs, each run's Failed state is read through the client; latency = the receiver's
  arrival time minus that state's timestamp, both on this machine's wall clock (arrivals are
  ``time.monotonic()``, turned into wall time with one offset taken at the start).
  Requests are matched to runs by the resource id in the webhook's body (the event).
- ``writer``: what the trigger costs the SQLite writer itself. One ``RecordBatch`` of 1,000
  task runs and 3,000 states (``write_batch.build_batch``) through
  ``EmbeddedClient.write_batch``, timed in the writing thread, each on a fresh copy of a
  template with and without the trigger. The WAL's size after the write says how many more
  pages were written. Median of ``--writer-repeats``, alternated.

``run()`` returns every figure as a dict (for ``benchmarks/run.py``); ``report()`` prints them
against the target of issue 12: events ON less than 10 % slower than OFF (the flow's wall
time). Latency has no target; it is bounded by the poll interval, which it is shown beside.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import bench_server
from workloads import _descendants, table

HERE = Path(__file__).resolve()
TESTS = HERE.parent.parent / "tests"  # the tests' receivers (automations/receivers.py)
OVERHEAD_TARGET = 0.10
WARMUP_TASKS = 50
DELIVERY_TIMEOUT_S = 10.0
DEFAULT_POLL_S = 0.25
BACKENDS = ("sqlite", "postgresql")
FLOW_MODES = ("embedded", "server_sqlite", "server_postgresql")
FLOW_LABELS = {
    "embedded": "embedded SQLite",
    "server_sqlite": "server, SQLite",
    "server_postgresql": "server, PostgreSQL",
}
SIDES = ("on", "off")
WRITER_VARIANTS = ("off", "on")
DROP_TRIGGER = {
    "sqlite": "DROP TRIGGER run_state_event",
    "postgresql": "DROP TRIGGER run_state_event ON run_state",
}

# ---- inside a measurement process -----------------------------------------------------------


def count_events(count_url: str) -> int:
    """Event rows in the store: ``sqlite:///path`` or ``postgresql+psycopg://.../db``."""
    if count_url.startswith("sqlite:///"):
        path = count_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return int(conn.execute("SELECT count(*) FROM event").fetchone()[0])
    import psycopg

    with psycopg.connect(**{**bench_server.PG_ADMIN, "dbname": _pg_name(count_url)}) as conn:
        row = conn.execute("SELECT count(*) FROM event").fetchone()
        return int(row[0]) if row else 0


def _pg_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _ticks(pid: int) -> int:
    """User + system clock ticks a process has used (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat


def _backend_pids(count_url: str) -> list[int]:
    import psycopg

    with psycopg.connect(**bench_server.PG_ADMIN) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (_pg_name(count_url),)
        ).fetchall()
    return [int(r[0]) for r in rows]


class CPUWatch:
    """CPU seconds used by other processes (a server, its database's backends) since start."""

    def __init__(self, server_pid: int | None, count_url: str) -> None:
        self.server = [server_pid, *_descendants(server_pid)] if server_pid else []
        self.backends = _backend_pids(count_url) if server_pid and "postgresql" in count_url else []
        self.start = {pid: _ticks(pid) for pid in self.server + self.backends}

    def used(self) -> dict[str, float | None]:
        tick = os.sysconf("SC_CLK_TCK")

        def delta(pids: list[int]) -> float | None:
            if not pids:
                return None
            return sum(max(0, _ticks(p) - self.start[p]) for p in pids) / tick

        return {"server_cpu_s": delta(self.server), "backends_cpu_s": delta(self.backends)}


def measure_flow(n_tasks: int, count_url: str, server_pid: int | None) -> dict[str, Any]:
    """A warm-up call, then one timed call (plus flushing its records), then counts."""
    from anabranch import flow, task
    from anabranch.client import get_client
    from anabranch.client.recorder import flush_all
    from anabranch.context import FlowRunContext
    from anabranch.task_runners import ThreadPoolTaskRunner

    run_ids: list[uuid.UUID] = []

    @task(name="bench-events-noop")
    def noop(i: int) -> int:
        return i

    @flow(name="bench-events-tasks", task_runner=ThreadPoolTaskRunner(max_workers=10))
    def wide(n: int) -> int:
        ctx = FlowRunContext.get()
        assert ctx is not None
        run_ids.append(ctx.flow_run.id)
        futures = [noop.submit(i) for i in range(n)]
        return sum(f.result() for f in futures)

    wide(WARMUP_TASKS)  # imports, connections, the server's first requests
    flush_all()
    events_before = count_events(count_url)
    watch = CPUWatch(server_pid, count_url)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    total = wide(n_tasks)
    flush_all()
    elapsed = time.perf_counter() - started
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    others = watch.used()
    if total != sum(range(n_tasks)):
        raise RuntimeError(f"the flow returned {total}")
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    recorded = len(get_client().read_task_runs(flow_run_id=run_ids[-1]))
    return {
        "n_tasks": n_tasks,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        **others,
        "events": count_events(count_url) - events_before,
        "recorded": recorded,
    }


def measure_latency(runs: int, seed: int) -> dict[str, Any]:
    """Failing flow runs through a server, each waiting for its automation's webhook."""
    sys.path.insert(0, str(TESTS))
    from anabranch import flow
    from anabranch.automations import Automation, CallWebhook, EventTrigger
    from anabranch.client import get_client
    from anabranch.client.recorder import flush_all
    from anabranch.context import FlowRunContext
    from anabranch.settings import get_settings
    from automations.receivers import HTTPReceiver

    poll = get_settings().automations_poll_seconds
    run_ids: list[uuid.UUID] = []

    @flow(name="bench-events-fails")
    def fails(i: int) -> None:
        ctx = FlowRunContext.get()
        assert ctx is not None
        run_ids.append(ctx.flow_run.id)
        raise RuntimeError(f"benchmark failure {i}")

    def fail_once(i: int) -> float:
        with contextlib.suppress(RuntimeError):
            fails(i)
        return time.time()

    rng = random.Random(seed)
    raised: dict[uuid.UUID, float] = {}
    missed = 0
    with HTTPReceiver() as receiver:
        Automation(
            name="bench-events-webhook",
            trigger=EventTrigger(expect={"anabranch.flow-run.Failed"}),
            actions=[CallWebhook(url=f"{receiver.url}/hook")],
        ).create()
        wall_offset = time.time() - time.monotonic()
        fail_once(-1)
        receiver.wait_for(1, timeout=30)  # warm-up: the evaluator and delivery are going
        for i in range(runs):
            time.sleep(rng.uniform(0, 2 * poll))  # not phase-locked to the server's poll
            arrived = len(receiver.requests)
            raised_at = fail_once(i)
            raised[run_ids[-1]] = raised_at
            try:
                receiver.wait_for(arrived + 1, timeout=DELIVERY_TIMEOUT_S)
            except AssertionError:
                missed += 1
        requests = receiver.requests
    flush_all()
    arrivals: dict[str, tuple[float, str | None]] = {}
    for request in requests:
        body = request.json or {}
        resource_id = (body.get("resource") or {}).get("anabranch.resource.id", "")
        run_id = resource_id.rsplit(".", 1)[-1]
        arrivals.setdefault(run_id, (request.arrived + wall_offset, body.get("occurred")))
    client = get_client()
    latencies, after_raise, before_raise, occurred_mismatch = [], [], [], 0
    for run_id, raised_at in raised.items():
        state = client.read_flow_run(run_id).state
        if state is None or state.name != "Failed" or str(run_id) not in arrivals:
            continue
        failed_at = state.timestamp.timestamp()
        arrival, occurred = arrivals[str(run_id)]
        latencies.append(arrival - failed_at)
        after_raise.append(arrival - raised_at)
        before_raise.append(raised_at - failed_at)
        if occurred is not None and abs(_parse_ts(occurred) - failed_at) > 1e-3:
            occurred_mismatch += 1
    return {
        "runs": runs,
        "delivered": len(latencies),
        "missed": missed,
        "requests": len(requests),
        "poll_s": poll,
        "latency_s": _quantiles(latencies),
        "raise_to_arrival_s": _quantiles(after_raise),
        "failed_to_raise_s": _quantiles(before_raise),
        "occurred_differs_from_state": occurred_mismatch,
    }


def _parse_ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p95": at(0.95),
        "min": ordered[0],
        "max": ordered[-1],
    }


def measure_writer(templates: dict[str, str], repeats: int) -> dict[str, Any]:
    """One 1,000-task RecordBatch per fresh copy of each SQLite variant, alternated."""

    from anabranch.client.embedded import EmbeddedClient
    from anabranch.database import get_engine
    from write_batch import build_batch

    batch = build_batch(1000, 3, 0)
    samples: dict[str, list[tuple[float, float, int]]] = {v: [] for v in WRITER_VARIANTS}
    with tempfile.TemporaryDirectory(prefix="anabranch-bench-events-writer-") as tmp:
        for i in range(repeats + 1):  # the first round warms up
            order = WRITER_VARIANTS if i % 2 == 0 else WRITER_VARIANTS[::-1]
            for variant in order:
                path = Path(tmp) / f"{variant}-{i}.db"
                shutil.copyfile(templates[variant], path)
                url = f"sqlite:///{path}"
                client = EmbeddedClient(url)
                client.read_flow_runs(limit=1)  # connect, untimed
                wall0, cpu0 = time.perf_counter(), time.thread_time()
                client.write_batch(batch)
                wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
                wal = Path(f"{path}-wal")
                wal_bytes = wal.stat().st_size if wal.exists() else 0
                get_engine(url).dispose()
                if i:
                    samples[variant].append((wall, cpu, wal_bytes))
    return {
        "repeats": repeats,
        "variants": {
            variant: {
                "wall_s": statistics.median(s[0] for s in rows),
                "cpu_s": statistics.median(s[1] for s in rows),
                "wal_bytes": statistics.median(s[2] for s in rows),
            }
            for variant, rows in samples.items()
        },
    }


def prepare(database_url: str) -> None:
    """Migrate a store (a template) and let go of it."""
    from anabranch.database import get_engine
    from anabranch.database.migrate import upgrade

    upgrade(database_url)
    get_engine(database_url).dispose()


# ---- templates, stores and child processes --------------------------------------------------


def _child(args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> dict[str, Any]:
    """Run this script with ``args`` and return the JSON it prints last."""
    return bench_server.run_for_json(HERE, args, env, cwd, timeout)


def _sqlite(path: Path, *statements: str) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _pg(*statements: str, dbname: str | None = None) -> None:
    import psycopg

    params = {**bench_server.PG_ADMIN, **({"dbname": dbname} if dbname else {})}
    with psycopg.connect(**params, autocommit=True, connect_timeout=5) as conn:
        for statement in statements:
            conn.execute(statement)


@contextlib.contextmanager
def _templates(folder: Path, backends: tuple[str, ...], timeout: float) -> Iterator[dict[str, Any]]:
    """Migrated stores to copy: ``{("sqlite", "on"): path, ("postgresql", "off"): name, ...}``
    and the writer's SQLite variants under ``"writer"``."""
    env = bench_server._clean_env(ANABRANCH_HOME=str(folder))
    found: dict[Any, Any] = {}
    made: list[str] = []
    try:
        if "sqlite" in backends:
            on = folder / "template-on.db"
            res = _child(["--prepare", f"sqlite:///{on}"], env, folder, timeout)
            if "error" in res:
                raise RuntimeError(f"migrating the SQLite template failed: {res['error']}")
            _sqlite(on)
            variants = {"on": on}
            off = folder / "template-off.db"
            shutil.copyfile(on, off)
            _sqlite(off, DROP_TRIGGER["sqlite"])
            variants["off"] = off
            found[("sqlite", "on")], found[("sqlite", "off")] = on, variants["off"]
            found["writer"] = {k: str(v) for k, v in variants.items()}
        if "postgresql" in backends:
            stem = f"anabranch_bench_tpl_{uuid.uuid4().hex[:8]}"
            on_name, off_name = f"{stem}_on", f"{stem}_off"
            _pg(f"CREATE DATABASE {on_name}")
            made.append(on_name)
            res = _child(
                ["--prepare", bench_server.PG_URL.format(name=on_name)], env, folder, timeout
            )
            if "error" in res:
                raise RuntimeError(f"migrating the PostgreSQL template failed: {res['error']}")
            _pg(f"CREATE DATABASE {off_name} TEMPLATE {on_name}")
            made.append(off_name)
            _pg(DROP_TRIGGER["postgresql"], dbname=off_name)
            found[("postgresql", "on")], found[("postgresql", "off")] = on_name, off_name
        yield found
    finally:
        for name in made:
            with contextlib.suppress(Exception):
                _pg(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def _store_from(backend: str, template: Any, home: Path) -> Iterator[str]:
    """A fresh store copied from ``template``; its database URL."""
    if backend == "sqlite":
        path = home / "anabranch.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    name = f"anabranch_bench_{uuid.uuid4().hex[:12]}"
    _pg(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield bench_server.PG_URL.format(name=name)
    finally:
        _pg(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _server_pid(api_url: str) -> int | None:
    """The `anabranch server start` child of this process listening on ``api_url``'s port."""
    port = api_url.rsplit(":", 1)[1].split("/", 1)[0]
    for pid in _descendants(os.getpid()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"server" in argv and port.encode() in argv:
            return pid
    return None


def _flow_once(
    mode: str, side: str, templates: dict[Any, Any], n_tasks: int, timeout: float
) -> dict[str, Any]:
    """One repetition: a fresh home, store (and server) and process."""
    backend = "sqlite" if mode == "embedded" else mode.removeprefix("server_")
    with tempfile.TemporaryDirectory(prefix="anabranch-bench-events-") as folder:
        home = Path(folder)
        client_home = home / "client"
        client_home.mkdir()
        args = ["--measure", "flow", "--n-tasks", str(n_tasks)]
        try:
            if mode == "embedded":
                with _store_from(backend, templates[(backend, side)], client_home) as url:
                    env = bench_server._clean_env(ANABRANCH_HOME=str(client_home))
                    return _child([*args, "--count-url", url], env, client_home, timeout)
            with (
                _store_from(backend, templates[(backend, side)], home) as url,
                bench_server._server(url, home) as api_url,
            ):
                pid = _server_pid(api_url)
                env = bench_server._clean_env(
                    ANABRANCH_HOME=str(client_home), ANABRANCH_API_URL=api_url
                )
                args += ["--count-url", url] + (["--server-pid", str(pid)] if pid else [])
                return _child(args, env, client_home, timeout)
        except Exception as exc:
            return {"error": repr(exc)}


def run_flows(
    mode: str, templates: dict[Any, Any], n_tasks: int, repeats: int, timeout: float
) -> dict[str, Any]:
    """``repeats`` processes per side, ON and OFF alternating."""
    samples: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    for i in range(repeats):
        for side in SIDES if i % 2 == 0 else SIDES[::-1]:
            samples[side].append(_flow_once(mode, side, templates, n_tasks, timeout))
    result: dict[str, Any] = {"n_tasks": n_tasks, "repeats": repeats}
    for side, runs in samples.items():
        errors = [r["error"] for r in runs if "error" in r]
        if errors:
            return {"error": f"events {side}: {errors[0]}", "errors": len(errors), "runs": runs}
        result[side] = _summary(runs)
    on, off = result["on"], result["off"]
    result["wall_change"] = on["elapsed_s"] / off["elapsed_s"] - 1
    result["cpu_change"] = on["cpu_s"] / off["cpu_s"] - 1
    result["events_per_s"] = statistics.median(r["events"] / r["elapsed_s"] for r in samples["on"])
    return result


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key in ("elapsed_s", "cpu_s", "server_cpu_s", "backends_cpu_s", "events"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            summary[key] = statistics.median(values)
            summary[f"{key}_all"] = values
    summary["recorded"] = min(r["recorded"] for r in runs)
    summary["n_tasks"] = runs[0]["n_tasks"]
    return summary


def run_latency(backend: str, runs: int, seed: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="anabranch-bench-events-") as folder:
        home = Path(folder)
        client_home = home / "client"
        client_home.mkdir()
        try:
            with (
                bench_server._store(backend, home) as url,
                bench_server._server(url, home) as api_url,
            ):
                env = bench_server._clean_env(
                    ANABRANCH_HOME=str(client_home), ANABRANCH_API_URL=api_url
                )
                args = ["--measure", "latency", "--latency-runs", str(runs), "--seed", str(seed)]
                return _child(args, env, client_home, timeout)
        except Exception as exc:
            return {"error": repr(exc)}


# ---- the driver -----------------------------------------------------------------------------


def run(
    timeout: float = 120.0,
    repeats: int = 5,
    server_repeats: int = 4,
    latency_runs: int = 40,
    writer_repeats: int = 10,
    n_tasks: int = 1000,
    backends: tuple[str, ...] = BACKENDS,
    only: tuple[str, ...] = ("flow", "latency", "writer"),
    seed: int = 12,
) -> dict[str, Any]:
    """Every measurement on every store; ``timeout`` bounds each child process."""
    started = time.monotonic()
    figures: dict[str, Any] = {"cpus": os.cpu_count(), "flow": {}, "latency": {}}
    figures["load_before"] = list(os.getloadavg())
    unreachable = bench_server.postgres_unreachable() if "postgresql" in backends else None
    if unreachable:
        figures["postgresql_skipped"] = unreachable
        backends = tuple(b for b in backends if b != "postgresql")
    with (
        tempfile.TemporaryDirectory(prefix="anabranch-bench-events-tpl-") as folder,
        _templates(Path(folder), backends, timeout) as templates,
    ):
        if "writer" in only and "writer" in templates:
            env = bench_server._clean_env(ANABRANCH_HOME=folder)
            args = ["--measure", "writer", "--writer-repeats", str(writer_repeats)]
            args += ["--templates", json.dumps(templates["writer"])]
            figures["writer"] = _child(args, env, Path(folder), timeout)
        for mode in FLOW_MODES if "flow" in only else ():
            backend = "sqlite" if mode == "embedded" else mode.removeprefix("server_")
            if backend not in backends:
                continue
            count = repeats if mode == "embedded" else server_repeats
            figures["flow"][mode] = run_flows(mode, templates, n_tasks, count, timeout)
    for backend in backends if "latency" in only else ():
        figures["latency"][backend] = run_latency(backend, latency_runs, seed, timeout)
    figures["load_after"] = list(os.getloadavg())
    figures["seconds"] = time.monotonic() - started
    return figures


def _pct(value: float) -> str:
    return f"{value * 100:+.1f} %"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.0f}"


def _flow_report(flows: dict[str, Any]) -> list[str]:
    lines, rows = [], []
    for mode, res in flows.items():
        label = FLOW_LABELS[mode]
        if "error" in res:
            rows.append([label, "ERROR"] + ["-"] * 8)
            lines.append(f"{label}: ERROR {res['error']}")
            continue
        on, off = res["on"], res["off"]
        recorded = min(on["recorded"], off["recorded"])
        verdict = "PASS" if res["wall_change"] < OVERHEAD_TARGET else "FAIL"
        rows.append(
            [
                label,
                f"{_ms(off['elapsed_s'])} / {_ms(on['elapsed_s'])}",
                _pct(res["wall_change"]),
                f"{_ms(off['cpu_s'])} / {_ms(on['cpu_s'])}",
                _pct(res["cpu_change"]),
                f"{_ms(off.get('server_cpu_s'))} / {_ms(on.get('server_cpu_s'))}",
                f"{_ms(off.get('backends_cpu_s'))} / {_ms(on.get('backends_cpu_s'))}",
                f"{on['events']:.0f} ({off['events']:.0f} off)",
                f"{res['events_per_s']:,.0f}",
                f"< +{OVERHEAD_TARGET:.0%}: {verdict}; {recorded}/{res['n_tasks']}"
                + (" MISSING" if recorded < res["n_tasks"] else ""),
            ]
        )
    if not rows:
        return lines
    first = next((r for r in flows.values() if "repeats" in r), {})
    embedded = flows.get("embedded", {}).get("repeats", "-")
    server = next(
        (r["repeats"] for m, r in flows.items() if m != "embedded" and "repeats" in r), "-"
    )
    headers = ["store", "wall off/on", "wall", "flow CPU off/on", "CPU", "server CPU"]
    headers += ["PG backends CPU", "events in the call", "events/s", "target; task runs"]
    return [
        f"flow of {first.get('n_tasks', '?')} no-op tasks, ThreadPoolTaskRunner(10), events "
        f"OFF / ON: medians of {embedded} (embedded) and {server} (server) fresh processes per "
        "side on fresh stores (and servers), alternating, each timing one call + flush_all() "
        "after a warm-up; ms; CPU of the flow's process, the server and PostgreSQL's backends",
        table(headers, rows),
        *lines,
    ]


def _writer_report(writer: dict[str, Any]) -> list[str]:
    if "error" in writer:
        return [f"writer: ERROR {writer['error']}"]
    base = writer["variants"]["off"]["wall_s"]
    rows = [
        [
            variant,
            f"{v['wall_s'] * 1e3:.1f}",
            _pct(v["wall_s"] / base - 1),
            f"{v['cpu_s'] * 1e3:.1f}",
            f"{v['wal_bytes'] / 1e6:.2f}",
        ]
        for variant, v in writer["variants"].items()
    ]
    return [
        "SQLite writer, 1,000 task runs + 3,000 states per batch, median of "
        f"{writer['repeats']} fresh copies per variant",
        table(["trigger", "wall ms", "vs off", "CPU ms", "WAL MB"], rows),
    ]


def _latency_report(latency: dict[str, Any]) -> list[str]:
    lines, rows = [], []
    for backend, res in latency.items():
        lat = res.get("latency_s")
        if not lat:
            rows.append([backend, "ERROR" if "error" in res else f"0/{res['runs']}"] + ["-"] * 4)
            lines.append(f"latency on {backend}: {res.get('error', 'no webhook arrived')}")
            continue
        if res["missed"] or res["occurred_differs_from_state"]:
            lines.append(
                f"latency on {backend}: {res['missed']} run(s) without a webhook within "
                f"{DELIVERY_TIMEOUT_S:g} s, {res['occurred_differs_from_state']} event(s) whose "
                "time is not the Failed state's"
            )
        rows.append(
            [
                backend,
                f"{res['delivered']}/{res['runs']}",
                f"{_ms(lat['p50'])} / {_ms(lat['p95'])} / {_ms(lat['max'])}",
                _ms(res["failed_to_raise_s"].get("p50")),
                _ms(res["raise_to_arrival_s"].get("p50")),
                f"{res['poll_s']:g} s",
            ]
        )
    if not rows:
        return lines
    headers = ["server on", "delivered", "p50 / p95 / max", "Failed->raise p50"]
    headers += ["raise->arrival p50", "poll"]
    return [
        "Failed state -> webhook at the receiver, one failing flow run at a time through the "
        "server (ms)",
        table(headers, rows),
        *lines,
    ]


def report(figures: dict[str, Any]) -> str:
    lines = [
        f"{figures.get('cpus', '?')} CPUs; 1-minute load average "
        f"{figures['load_before'][0]:.1f} before, {figures['load_after'][0]:.1f} after; "
        f"{figures.get('seconds', 0):.0f} s in all"
    ]
    if "postgresql_skipped" in figures:
        lines.append(f"PostgreSQL skipped: {figures['postgresql_skipped']}")
    lines += _flow_report(figures.get("flow", {}))
    if figures.get("writer"):
        lines += _writer_report(figures["writer"])
    lines += _latency_report(figures.get("latency", {}))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="embedded processes per side")
    parser.add_argument("--server-repeats", type=int, default=4, help="servers per side")
    parser.add_argument("--latency-runs", type=int, default=40)
    parser.add_argument("--writer-repeats", type=int, default=10)
    parser.add_argument("--n-tasks", type=int, default=1000)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("flow", "latency", "writer"),
        default=["flow", "latency", "writer"],
    )
    parser.add_argument("--seed", type=int, default=12, help="the latency runs' pauses")
    parser.add_argument("--timeout", type=float, default=120.0, help="per child process")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--measure", choices=("flow", "latency", "writer"), help=argparse.SUPPRESS)
    parser.add_argument("--prepare", help=argparse.SUPPRESS)
    parser.add_argument("--count-url", help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--templates", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare:
        prepare(args.prepare)
        print("{}")
        return 0
    if args.measure == "flow":
        print(json.dumps(measure_flow(args.n_tasks, args.count_url, args.server_pid)))
        return 0
    if args.measure == "latency":
        print(json.dumps(measure_latency(args.latency_runs, args.seed)))
        return 0
    if args.measure == "writer":
        print(json.dumps(measure_writer(json.loads(args.templates), args.writer_repeats)))
        return 0
    figures = run(
        args.timeout,
        args.repeats,
        args.server_repeats,
        args.latency_runs,
        args.writer_repeats,
        args.n_tasks,
        tuple(args.backends),
        tuple(args.only),
        args.seed,
    )
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
