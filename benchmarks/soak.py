"""The soak: mixed work against a real server on PostgreSQL for a long while, with the server
and the workers SIGKILLed on a schedule, then an account of every run the drivers created.

Usage: python benchmarks/soak.py [--minutes 30] [--server-kill-every 300]
       [--worker-kill-every 420] [--outage 10 20] [--seed 9] [--keep] [--json]

``make soak`` runs it with the defaults (30 minutes; not part of ``make bench``). A quick
try: ``--minutes 3 --server-kill-every 60 --worker-kill-every 80``.

What runs, each a real process on this machine:

- one ``anabranch server start`` on a fixed loopback port (clients and their spools name
  the server by URL, so it comes back on the same one), on a fresh PostgreSQL database
  ``anabranch_soak_<hex>`` created on ``postgresql+psycopg://postgres@127.0.0.1:5432`` and
  dropped at the end;
- a work pool ``soak-pool`` (limit 4) served by two ``anabranch worker start`` processes, a
  deployment ``soak-child/soak`` of ``soak_flows/child.py``, and a concurrency limit
  ``soak-db`` of 4 slots;
- four driver processes (``soak_flows/drivers.py``), each looping one flow with a pause of
  ``--pause`` seconds: 200 tasks; 20 subflows of one task each; 50 tasks tagged ``soak-db``;
  3 ``run_deployment`` children. Each prints every run it created as JSON lines.

Every ``--server-kill-every`` seconds the server gets SIGKILL and comes back after an outage
drawn from ``--outage`` (seconds, uniform, from ``--seed``); every ``--worker-kill-every``
seconds one worker gets SIGKILL (one running children if any is, drawn from the same
generator) and is restarted a few seconds later. A worker's children get SIGTERM from the
kernel when it dies, so deployment runs it had end Crashed: expected, and counted apart.

At the end: the drivers finish their current call and flush; the soak waits until the
database holds no unfinished flow or task run (or ``--settle`` seconds pass); every home
(each driver's and each worker's) gets ``anabranch flow-run ls``, which delivers its spool;
what is still spooled is counted. Then the figures: runs created (drivers) against runs
held (database), final states, records lost, slots held (``anabranch concurrency-limit
inspect soak-db`` and the tables), RSS of the server and the clients at start and end (VmRSS
from /proc, sampled every ``--sample-every`` seconds), and the kills. They are printed as a
table and written as JSON to ``benchmarks/.results/soak-<date>.json``. The temporary folder
(logs of every process, the drivers' output) is kept with ``--keep`` or when something was
lost; its path is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import soak_audit
from bench_server import (
    PG_ADMIN,
    PG_URL,
    _clean_env,
    _free_port,
    _healthy,
    _server_command,
    postgres_unreachable,
)
from workloads import save_results, table

HERE = Path(__file__).resolve().parent
FLOWS = HERE / "soak_flows"
ANABRANCH = str(Path(sys.executable).with_name("anabranch"))
POOL, POOL_LIMIT = "soak-pool", 4
LIMIT_NAME, LIMIT_SLOTS = "soak-db", 4
DRIVERS = ("tasks", "subflows", "limited", "deployments")
WORKERS = 2
READY_S = 60.0
STOP_S = 30.0
STUCK_S = 20.0


def rss_mb(pid: int | None) -> float | None:
    """A process's resident set size (VmRSS) in MB, or None if it is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children_of(pid: int | None) -> list[str]:
    """The pids of a process's children (a worker's are its runs' processes)."""
    if pid is None:
        return []
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


class Proc:
    """A process the soak starts, kills and restarts; its output is appended to one log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], folder: Path,
                 stdout: Path | None = None) -> None:
        self.name, self.argv, self.env, self.folder = name, argv, env, folder
        self.log = folder / f"{name}.log"
        self.stdout = stdout
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = self.kills = 0
        self.unexpected_exits: list[str] = []
        self.rss: list[tuple[float, float]] = []  # (seconds into the soak, MB)
        self.rss_before_kills: list[float] = []

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    @property
    def exit_code(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        with self.log.open("ab") as log:
            out = self.stdout.open("ab") if self.stdout else log
            # A session of its own: a Ctrl-C at the soak's terminal reaches only the soak.
            self.popen = subprocess.Popen(
                self.argv, env=self.env, cwd=self.folder, stdout=out,
                stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            )
            if self.stdout:
                out.close()
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL the process itself (not its group: a worker's children see it die)."""
        if self.alive():
            assert self.popen is not None
            rss = rss_mb(self.popen.pid)
            if rss is not None:
                self.rss_before_kills.append(round(rss, 1))
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=30)
            self.kills += 1

    def stop(self, timeout: float = STOP_S) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)

    def sample(self, at: float) -> None:
        rss = rss_mb(self.pid) if self.alive() else None
        if rss is not None:
            self.rss.append((round(at, 1), round(rss, 1)))

    def figures(self, warm_at: float) -> dict[str, Any]:
        """``warm_at``: seconds into the soak from which a sample counts as "at start"."""
        values = [mb for _, mb in self.rss]
        warm = [sample for sample in self.rss if sample[0] >= warm_at]
        return {
            "starts": self.starts,
            "kills": self.kills,
            "unexpected_exits": self.unexpected_exits,
            "rss_mb_start": (warm or self.rss or [None])[0],
            "rss_mb_last": self.rss[-1] if self.rss else None,
            "rss_mb_peak": max(values) if values else None,
            "rss_mb_before_kills": self.rss_before_kills,
        }


class Soak:
    def __init__(self, args: argparse.Namespace, folder: Path, database: str) -> None:
        self.args, self.folder, self.database = args, folder, database
        self.rng = random.Random(args.seed)
        self.port = _free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.stop_file = folder / "stop"
        self.started = time.monotonic()
        self.events: list[dict[str, Any]] = []
        settings = {"ANABRANCH_HEARTBEAT_SECONDS": str(args.heartbeat_seconds)} if (
            args.heartbeat_seconds) else {}
        if args.client_retry_seconds is not None:
            settings["ANABRANCH_CLIENT_RETRY_SECONDS"] = str(args.client_retry_seconds)
        self.settings = settings
        server_env = _clean_env(
            ANABRANCH_HOME=str(self._home("server")),
            ANABRANCH_DATABASE_URL=PG_URL.format(name=database), **settings,
        )
        self.server = Proc("server", _server_command(self.port), server_env, folder)
        self.workers = [
            Proc(f"worker-{i}", [ANABRANCH, "worker", "start", "--pool", POOL],
                 self.client_env(f"worker-{i}"), folder)
            for i in range(WORKERS)
        ]
        self.drivers = [
            Proc(f"driver-{kind}",
                 [sys.executable, str(FLOWS / "drivers.py"), "--kind", kind,
                  "--stop-file", str(self.stop_file), "--pause", str(args.pause)],
                 self.client_env(f"driver-{kind}"), folder,
                 stdout=folder / f"driver-{kind}.jsonl")
            for kind in DRIVERS
        ]

    # ---- set-up ------------------------------------------------------------------------

    def _home(self, name: str) -> Path:
        home = self.folder / "homes" / name
        home.mkdir(parents=True, exist_ok=True)
        return home

    def client_env(self, home: str) -> dict[str, str]:
        return _clean_env(
            ANABRANCH_HOME=str(self._home(home)), ANABRANCH_API_URL=self.api_url,
            PYTHONUNBUFFERED="1", **self.settings,
        )

    def at(self) -> float:
        return time.monotonic() - self.started

    def note(self, event: str, **details: Any) -> None:
        self.events.append({"at": round(self.at(), 1), "event": event, **details})
        print(f"[{self.at():7.1f} s] {event} {' '.join(f'{k}={v}' for k, v in details.items())}",
              flush=True)

    def cli(self, *args: str, home: str = "setup", check: bool = True) -> str:
        proc = subprocess.run(
            [ANABRANCH, *args], env=self.client_env(home), cwd=self.folder,
            capture_output=True, text=True, timeout=300, check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"anabranch {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def start_server(self) -> None:
        self.server.start()
        deadline = time.monotonic() + READY_S
        while not _healthy(self.api_url):
            if not self.server.alive() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server did not come up (exit {self.server.exit_code}); "
                    f"see {self.server.log}"
                )
            time.sleep(0.1)

    def set_up(self) -> None:
        self.start_server()
        self.cli("work-pool", "create", POOL, "--concurrency-limit", str(POOL_LIMIT))
        self.cli("concurrency-limit", "create", LIMIT_NAME, str(LIMIT_SLOTS))
        self.cli("deploy", f"{FLOWS / 'child.py'}:soak_child", "--name", "soak", "--pool", POOL)
        for worker in self.workers:
            worker.start()
        deadline = time.monotonic() + READY_S
        while json.loads(self.cli("work-pool", "inspect", POOL, "-o", "json")).get(
            "online_workers", 0
        ) < WORKERS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not come online; see {self.folder}")
            time.sleep(0.5)
        self.started = time.monotonic()
        self.sample()
        for driver in self.drivers:
            driver.start()
        self.note("started", server_pid=self.server.pid, port=self.port,
                  workers=[w.pid for w in self.workers], drivers=[d.pid for d in self.drivers])

    # ---- the soak itself ---------------------------------------------------------------

    def sample(self) -> None:
        for proc in (self.server, *self.workers, *self.drivers):
            proc.sample(self.at())

    def run(self) -> None:
        args = self.args
        end = args.minutes * 60
        next_server_kill, next_worker_kill = args.server_kill_every, args.worker_kill_every
        server_back_at: float | None = None
        worker_back_at: dict[int, float] = {}
        next_sample = 0.0
        while self.at() < end:
            now = self.at()
            if server_back_at is not None and now >= server_back_at:
                self.start_server()
                server_back_at = None
                self.note("server restarted", pid=self.server.pid)
            elif server_back_at is None and now >= next_server_kill:
                self.server.kill()
                outage = self.rng.uniform(*args.outage)
                server_back_at = now + outage
                next_server_kill += args.server_kill_every
                self.note("server killed", outage_s=round(outage, 1))
            if now >= next_worker_kill:
                # A worker running children, if one is: its runs' Crashed path is the point.
                busy = [i for i, w in enumerate(self.workers) if children_of(w.pid)]
                index = self.rng.choice(busy or list(range(WORKERS)))
                running = len(children_of(self.workers[index].pid))
                self.workers[index].kill()
                worker_back_at[index] = now + self.rng.uniform(2, 5)
                next_worker_kill += args.worker_kill_every
                self.note("worker killed", worker=index, children_running=running)
            for index, back in list(worker_back_at.items()):
                if now >= back:
                    self.workers[index].start()
                    del worker_back_at[index]
                    self.note("worker restarted", worker=index, pid=self.workers[index].pid)
            self._restart_the_fallen(server_back_at, worker_back_at)
            if now >= next_sample:
                self.sample()
                next_sample = now + args.sample_every
            time.sleep(0.2)
        if server_back_at is not None:
            self.start_server()
            self.note("server restarted", pid=self.server.pid)
        for index in worker_back_at:
            self.workers[index].start()
            self.note("worker restarted", worker=index, pid=self.workers[index].pid)
        self.sample()

    def _restart_the_fallen(self, server_back_at: float | None,
                            worker_back_at: dict[int, float]) -> None:
        """A process that exited without being killed is a finding: note it, restart it."""
        fallen = [self.server] if server_back_at is None and not self.server.alive() else []
        fallen += [w for i, w in enumerate(self.workers)
                   if i not in worker_back_at and not w.alive()]
        fallen += [d for d in self.drivers if not d.alive()]
        for proc in fallen:
            proc.unexpected_exits.append(f"{self.at():.0f} s: exit {proc.exit_code}")
            self.note("exited by itself; restarting it", process=proc.name, code=proc.exit_code)
            if proc is self.server:
                self.start_server()
            else:
                proc.start()

    # ---- the end -----------------------------------------------------------------------

    def drain(self) -> dict[str, Any]:
        """Stop the drivers after their current call; deliver and settle everything."""
        figures: dict[str, Any] = {"hung_drivers": []}
        self.stop_file.touch()
        self.note("stopping the drivers")
        deadline = time.monotonic() + self.args.drain
        for driver in self.drivers:
            assert driver.popen is not None
            try:
                driver.popen.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                driver.popen.send_signal(signal.SIGUSR1)  # its threads' stacks, to its log
                time.sleep(2)
                figures["hung_drivers"].append(driver.name)
                self.note("driver hung; stacks in its log, killing it", driver=driver.name)
                driver.popen.kill()
                driver.popen.wait(timeout=10)
        self.note("drivers stopped")
        figures["settle_s"] = self.settle()
        delivered = {}
        for home in sorted(p.name for p in (self.folder / "homes").iterdir()):
            if home not in ("server", "setup"):
                self.cli("flow-run", "ls", "-n", "1", "-o", "json", home=home, check=False)
                delivered[home] = self.spooled(home)
        figures["still_spooled"] = delivered
        figures["settle_after_delivery_s"] = self.settle()
        return figures

    def settle(self) -> float | None:
        """Seconds until no flow or task run is unfinished in the database; None if some
        still were after ``--settle`` seconds, or if, with every flow run final, the
        unfinished task runs stayed the same for ``STUCK_S`` (nothing will finish them:
        the server crashes a dead flow run's task runs with it, not on their own)."""
        import psycopg

        started = time.monotonic()
        last, since = -1, started
        with psycopg.connect(**{**PG_ADMIN, "dbname": self.database}, autocommit=True) as conn:
            while True:
                flows, tasks = (
                    conn.execute(
                        f"SELECT count(*) FROM {table_name} WHERE state_type IS NULL OR "
                        f"state_type IN {soak_audit.NOT_FINAL!r}"
                    ).fetchone()[0]
                    for table_name in ("flow_run", "task_run")
                )
                if flows + tasks == 0:
                    return round(time.monotonic() - started, 1)
                if tasks != last:
                    last, since = tasks, time.monotonic()
                stuck = flows == 0 and time.monotonic() - since > STUCK_S
                if stuck or time.monotonic() - started > self.args.settle:
                    self.note("still unfinished after settling", flow_runs=flows, task_runs=tasks)
                    return None
                time.sleep(1)

    def spooled(self, home: str) -> dict[str, int]:
        files = list((self.folder / "homes" / home / "spool").glob("*/*"))
        return {
            "batches": sum(1 for p in files if p.name.endswith(".batch.json")
                           or ".delivering-" in p.name),
            "unreadable": sum(1 for p in files if p.name.endswith(".unreadable")),
        }

    def account(self, drained: dict[str, Any]) -> dict[str, Any]:
        import psycopg

        created = soak_audit.read_created([d.stdout for d in self.drivers if d.stdout])
        with psycopg.connect(**{**PG_ADMIN, "dbname": self.database}, autocommit=True) as conn:
            figures = soak_audit.audit(conn, created, POOL)
        inspect = self.cli("concurrency-limit", "inspect", LIMIT_NAME, "-o", "json", check=False)
        try:
            limit = json.loads(inspect)
            figures["limit_inspect"] = {
                "active_slots": limit.get("active_slots"),
                "holders": len(limit.get("holders") or []),
                "waiting": limit.get("waiting"),
            }
        except ValueError:
            figures["limit_inspect"] = {"error": inspect.strip()[-300:]}
        figures["drivers_done"] = created.done
        figures["call_seconds_median"] = {
            kind: sorted(values)[len(values) // 2] for kind, values in created.call_seconds.items()
        }
        figures.update(drained)
        return figures

    def stop_all(self) -> None:
        for proc in (*self.drivers, *self.workers, self.server):
            try:
                proc.stop()
            except Exception as exc:  # the rest must still stop
                print(f"stopping {proc.name}: {exc!r}", file=sys.stderr)

    def process_figures(self) -> dict[str, Any]:
        servers = {p.name: p.figures(0.0) for p in (self.server, *self.workers)}
        # A driver's first samples are its imports and first call: start from its warm-up.
        drivers = {p.name: p.figures(self.args.warm_up) for p in self.drivers}
        return {**servers, **drivers}


_WORTH_READING = ("Traceback", "anabranch:", "ERROR", "WARNING", "Warning", "could not",
                  "Error:", "exited", "refused")


def _shape(line: str) -> str:
    """A log line with its names, ids and numbers blanked, so that lines of one kind group."""
    line = re.sub(r"^[0-9:.]+ \| ", "", line)
    line = re.sub(r"'[^']*'", "'…'", line)
    line = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", line)
    return re.sub(r"\d+(\.\d+)?", "N", line)[:220]


def log_errors(folder: Path, most: int = 12) -> dict[str, Any]:
    """Tracebacks, warnings and anabranch's own complaints in every process's log, grouped
    by their shape (names, ids and numbers blanked) and counted."""
    counts: Counter[str] = Counter()
    for path in sorted(folder.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if any(word in line for word in _WORTH_READING):
                counts[f"{path.stem}: {_shape(line)}"] += 1
    return {"distinct": len(counts), "top": dict(counts.most_common(most))}


def create_database() -> str:
    import psycopg

    name = f"anabranch_soak_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(**PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(**PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "cpus": os.cpu_count(),
        "load_before": list(os.getloadavg()),
    }
    reason = postgres_unreachable()
    if reason:
        figures["error"] = f"skipped: {reason}"
        return figures
    folder = Path(tempfile.mkdtemp(prefix="anabranch-soak-"))
    database = create_database()
    wall = time.monotonic()
    soak: Soak | None = None
    try:
        soak = Soak(args, folder, database)
        soak.set_up()
        soak.run()
        figures.update(soak.account(soak.drain()))
        soak.sample()
    except BaseException as exc:
        figures["error"] = repr(exc)
        if not isinstance(exc, Exception):
            raise
    finally:
        if soak is not None:
            figures["processes"] = soak.process_figures()
            figures["events"] = soak.events
            soak.stop_all()
        drop_database(database)
        figures["log_errors"] = log_errors(folder)
        figures["wall_s"] = round(time.monotonic() - wall, 1)
        figures["load_after"] = list(os.getloadavg())
        if args.keep or figures.get("error") or (figures.get("lost") or {}).get("total"):
            figures["kept"] = str(folder)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return figures


def _mb(sample: Any) -> str:
    return "-" if not sample else f"{sample[1]:.0f} ({sample[0]:.0f} s)"


def report(figures: dict[str, Any]) -> str:
    settings = figures["settings"]
    lines = [
        f"soak: {settings['minutes']:g} min; server SIGKILL every {settings['server_kill_every']:g}"
        f" s (outage {settings['outage'][0]:g}-{settings['outage'][1]:g} s), a worker every "
        f"{settings['worker_kill_every']:g} s; seed {settings['seed']}; {figures.get('cpus')} "
        f"CPUs, load {figures['load_before'][0]:.1f} before, "
        f"{figures.get('load_after', [0])[0]:.1f} after; {figures.get('wall_s', 0):.0f} s in all"
    ]
    if figures.get("error"):
        lines.append(f"ERROR: {figures['error']}")
    if figures.get("kept"):
        lines.append(f"kept: {figures['kept']}")
    processes = figures.get("processes", {})
    if "created" in figures:
        created, held, lost = figures["created"], figures["database"], figures["lost"]
        lines.append(f"flow calls per driver: {created['flow_calls']}; calls that raised: "
                     f"{created['flow_calls_with_error'] or 'none'}; median seconds per call: "
                     f"{figures.get('call_seconds_median')}")
        rows = [
            ["flow runs", f"{created['flow_runs']:,}", f"{held['flow_runs']:,}",
             str(held["flow_runs_by_state"]),
             str(lost["flow_runs_missing"] + lost["deployment_children_missing"]),
             str(lost["database_flow_runs_not_final"]),
             str(lost["flow_runs_mismatched"] + lost["deployment_children_mismatched"])],
            ["task runs", f"{created['task_runs']:,}", f"{held['task_runs']:,}",
             str(held["task_runs_by_state"]), str(lost["task_runs_missing"]),
             str(lost["database_task_runs_not_final"]), str(lost["task_runs_mismatched"])],
        ]
        lines.append(table(["runs", "drivers created", "database holds", "database by state",
                            "missing", "not final", "other final state"], rows))
        if created["deployment_calls_that_created_nothing"]:
            lines.append("  run_deployment calls that failed before creating their child: "
                         f"{created['deployment_calls_that_created_nothing']}")
        unaccounted = figures["unaccounted"]
        lines.append(
            f"  of the flow runs created: {created['parent_flow_runs']:,} parents, "
            f"{created['subflow_runs']:,} subflows, {created['deployment_children']:,} "
            f"deployment children (their own {unaccounted['deployment_children_task_runs']:,} "
            f"task runs are in the database's count, not the drivers'); "
            f"unaccounted in the database: {unaccounted['flow_runs']} flow runs, "
            f"{unaccounted['task_runs']} task runs"
        )
        lines.append(f"  by flow: {held['flow_runs_by_flow_and_state']}")
        for key in ("flow_runs_examples", "task_runs_examples", "deployment_children_examples",
                    "database_not_final_examples"):
            for example in lost.get(key, []):
                lines.append(f"  {key.removesuffix('_examples')}: {example}")
        crashed = figures["crashed"]
        lines.append(
            f"Crashed: {crashed['deployment_children']} deployment children (expected: their "
            f"worker was killed) {crashed['deployment_children_messages']}; "
            f"{crashed['driver_flow_runs']} drivers' flow runs "
            f"{crashed['driver_flow_runs_messages']}; {crashed['task_runs']} task runs "
            f"{crashed['task_runs_messages']}"
        )
        spooled = sum(v["batches"] for v in figures["still_spooled"].values())
        summary = [
            ["records lost (target 0)", str(lost["total"])],
            ["still spooled after `flow-run ls` in every home", str(spooled)],
            ["settled (s; None = runs left unfinished)",
             f"{figures['settle_s']}, after delivery {figures['settle_after_delivery_s']}"],
            [f"{LIMIT_NAME} slots held at the end (inspect; target 0)",
             f"{figures['limit_inspect']}"],
            ["slots in the concurrency tables", str(figures["concurrency_tables"])],
            [f"{POOL} runs holding pool slots (target 0)", str(figures["pool_runs_holding_slots"])],
            ["drivers that hung at the end", str(figures["hung_drivers"] or "none")],
        ]
        lines.append(table(["figure", "value"], summary))
    rows = []
    for name, proc in processes.items():
        rows.append([name, _mb(proc["rss_mb_start"]), _mb(proc["rss_mb_last"]),
                     f"{proc['rss_mb_peak'] or 0:.0f}", str(proc["starts"]), str(proc["kills"]),
                     str(len(proc["unexpected_exits"]))])
    if rows:
        lines.append("RSS in MB (seconds into the soak); a driver's start is its first sample "
                     "after the warm-up; the server's end is its last incarnation's")
        lines.append(table(["process", "RSS start", "RSS end", "peak", "starts", "SIGKILLs",
                            "exited by itself"], rows))
    errors = figures.get("log_errors") or {}
    if errors.get("top"):
        lines.append(f"log lines worth reading ({errors['distinct']} distinct):")
        lines += [f"  {count} x {line}" for line, count in errors["top"].items()]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--server-kill-every", type=float, default=300.0, metavar="SECONDS")
    parser.add_argument("--worker-kill-every", type=float, default=420.0, metavar="SECONDS")
    parser.add_argument("--outage", type=float, nargs=2, default=[10.0, 20.0],
                        metavar=("MIN", "MAX"), help="seconds the server stays down")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--pause", type=float, default=1.0,
                        help="seconds each driver waits between flow calls")
    parser.add_argument("--heartbeat-seconds", type=float, default=None,
                        help="ANABRANCH_HEARTBEAT_SECONDS everywhere (default: anabranch's)")
    parser.add_argument("--client-retry-seconds", type=float, default=None,
                        help="ANABRANCH_CLIENT_RETRY_SECONDS for the clients (default: "
                        "anabranch's); below the outage, records go to the spool")
    parser.add_argument("--sample-every", type=float, default=10.0, help="RSS sampling, s")
    parser.add_argument("--warm-up", type=float, default=30.0,
                        help="a driver's RSS at start is its first sample after this many s")
    parser.add_argument("--drain", type=float, default=600.0,
                        help="seconds the drivers get to finish their last call and flush")
    parser.add_argument("--settle", type=float, default=180.0,
                        help="seconds to wait for every run in the database to be final")
    parser.add_argument("--keep", action="store_true", help="keep the folder (logs, output)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figures = run(args)
    path = save_results("soak", figures)
    print(json.dumps(figures, indent=2, default=str) if args.json else report(figures))
    print(f"raw figures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
