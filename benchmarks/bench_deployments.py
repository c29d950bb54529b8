"""Deployments and workers: how fast a worker starts a new run, and how many tiny deployment
runs a pool works off per second.

Usage: python benchmarks/bench_deployments.py [--latency-runs 50] [--throughput-runs 500]
       [--workers 2] [--worker-limit N] [--timeout 300] [--keep] [--json]

Everything runs against a real ``anabranch server start`` on a free loopback port with a
fresh SQLite store (started and stopped as in ``bench_server.py``) and real worker processes
(``anabranch worker start --pool P`` when the CLI has that command, otherwise the same
``ProcessWorker(P).run()`` through ``python -c``), each running every flow run in a child
process of its own (``python -m anabranch.deployments.execute RUN_ID``), as users run them.
The driver is a separate process talking to the server through ``HTTPClient``. The work pool
has no concurrency limit, and the workers none of their own unless ``--worker-limit``.

Measurements:

- ``latency``: one worker, already polling (two untimed warm-up runs first). ``--latency-runs``
  runs of a deployment of a flow that returns 1 are created one at a time, each 0.1 s after
  the previous one was seen Completed, so each meets a free worker waiting in its poll. For
  each run, from its ``created`` time in the store (set by the server as it creates the run):

  * ``pending``: the run's Pending state (the server handing it to the worker's poll);
  * ``process``: the child process exists. The child's flow module reads, when it is
    imported, its own start time from ``/proc/self/stat`` (the kernel's fork time, in clock
    ticks of 10 ms; the middle of the tick is taken, so +-5 ms) and converts it to wall-clock
    time through ``CLOCK_BOOTTIME``. This is the issue's "creation to the worker starting its
    process" (target < 200 ms);
  * ``loaded``: the child's flow module runs its top-level code (``time.time()``): the
    interpreter has started, imported anabranch, read the run and its deployment from the
    server and imported the entrypoint's file;
  * ``running``: the run's ``start_time`` in the store (the child's Running state);
  * and, apart, from the run's ``end_time`` to the driver's ``wait_for_flow_run`` returning
    (what a ``run_deployment`` caller waits after the child is done).

  Median, p95 and max of each. The server, the worker, the child and the driver share one
  machine and its wall clock.
- ``throughput``: ``--workers`` workers (all online before the clock starts). The clock
  starts, ``--throughput-runs`` runs of a flow that returns its parameter are created as fast
  as one client can, one request after another, and it stops when the driver has seen every
  one of them final (a long poll on each in turn). The figure is runs per second over that
  wall time; the creation time alone, the last ``end_time`` in the store, the most runs
  Running at once and the final states are reported too.

``run()`` returns every figure as a dict (for ``benchmarks/run.py``); ``main()`` prints them
against the target. ``--keep`` keeps the temporary folder (store, server and worker logs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
DISPATCH_TARGET_MS = 200.0
PREFECT_REFERENCE = (
    "Prefect 3.8.8 on a machine like this one: median 23 s from creating a child run to its "
    "start (20 children through one process worker)"
)
POOL = "bench-pool"
WORKER_READY_S = 60.0
WORKER_STOP_S = 30.0

# The deployed flows. The module's top-level code notes when it ran and when its process
# was forked, for the latency runs (whose deployment sets BENCH_MARKS).
FLOWS = '''
import atexit
import os
import resource
import time

LOADED = time.time()


def _forked_at() -> float:
    """This process's fork time in wall-clock seconds, +-5 ms: the kernel counts it in
    ticks of 10 ms (rounded down), so the middle of its tick is taken."""
    with open("/proc/self/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[19])  # field 22, starttime, counted after the ")" that ends field 2
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    return time.time() - age + 0.5 / os.sysconf("SC_CLK_TCK")


def _note_cpu(path: str) -> None:
    """The CPU time of the whole process (user + system), noted as late as possible: exit
    handlers run last-registered first, and anabranch registers its own (the final flush of
    the run's records) after this module is imported."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(path + ".cpu", "w") as note:
        note.write(repr(usage.ru_utime + usage.ru_stime))


if os.environ.get("BENCH_MARKS"):
    _path = os.path.join(os.environ["BENCH_MARKS"], os.environ["ANABRANCH_FLOW_RUN_ID"])
    with open(_path, "w") as mark:
        mark.write(f"{_forked_at()!r} {LOADED!r}")
    atexit.register(_note_cpu, _path)

from anabranch import flow  # noqa: E402


@flow(name="bench-probe")
def probe() -> int:
    return 1


@flow(name="bench-tiny")
def tiny(i: int) -> int:
    return i
'''

WORKER_FALLBACK = (
    "import logging, sys; from anabranch.workers.worker import ProcessWorker; "
    "logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(message)s'); "
    "ProcessWorker(sys.argv[1], limit=int(sys.argv[2]) if sys.argv[2:] else None).run()"
)


# ---- the driver process: talks to the server, runs the workers ------------------------------


def _anabranch_cli() -> list[str]:
    script = Path(sys.executable).parent / "anabranch"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from anabranch.cli import main; main()"]


def _worker_command(limit: int | None) -> tuple[list[str], str]:
    """`anabranch worker start --pool P` if the CLI has it, else ProcessWorker by hand."""
    cli = _anabranch_cli()
    probe = subprocess.run(
        [*cli, "worker", "start", "--help"], capture_output=True, text=True, timeout=60,
        check=False,
    )
    if probe.returncode == 0:
        extra = ["--limit", str(limit)] if limit else []
        return [*cli, "worker", "start", "--pool", POOL, *extra], " ".join(
            ["anabranch worker start", *extra]
        )
    extra = [str(limit)] if limit else []
    return [sys.executable, "-c", WORKER_FALLBACK, POOL, *extra], (
        f"ProcessWorker(pool, limit={limit}).run() via python -c"
    )


class Workers:
    """Worker processes, each in a session of its own, logging to a file in ``folder``."""

    def __init__(self, folder: Path, limit: int | None = None) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []
        self.command, self.how = _worker_command(limit)

    def start(self, count: int) -> None:
        for _ in range(count):
            log = (self.folder / f"worker-{len(self.procs)}.log").open("wb")
            self.procs.append(
                subprocess.Popen(
                    self.command, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
            )
            log.close()

    def wait_online(self, client: Any, count: int) -> None:
        deadline = time.monotonic() + WORKER_READY_S
        while client.read_work_pool(POOL).online_workers < count:
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"a worker exited ({dead[0].returncode}): {self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} worker(s) not online after {WORKER_READY_S:g} s")
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=WORKER_STOP_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs = []

    def tail(self, lines: int = 8) -> str:
        text = "\n".join(
            p.read_text(errors="replace") for p in sorted(self.folder.glob("worker-*.log"))
        )
        return " | ".join(text.strip().splitlines()[-lines:])


def _deploy(client: Any, folder: Path, marks: Path, bulk_marks: Path) -> dict[str, uuid.UUID]:
    from anabranch.deployments.deploy import build_deployment
    from anabranch.deployments.entrypoints import load_flow

    client.create_work_pool(POOL)
    ids = {}
    for function, env in (("probe", {"BENCH_MARKS": str(marks)}),
                          ("tiny", {"BENCH_MARKS": str(bulk_marks)})):
        flow = load_flow(f"bench_flows.py:{function}", working_dir=folder)
        deployment = build_deployment(
            flow, name="bench", work_pool_name=POOL,
            entrypoint=f"bench_flows.py:{function}",
            job_variables={"working_dir": str(folder), "env": env},
        )
        ids[function] = client.save_deployment(deployment).id
    return ids


def _cpu_ms(marks: Path, run_ids: list[uuid.UUID], wait: float = 10.0) -> list[float]:
    """The children's CPU times in ms, as they noted them on exit (waiting for the last)."""
    deadline = time.monotonic() + wait
    paths = [marks / f"{run_id}.cpu" for run_id in run_ids]
    while not all(p.exists() for p in paths) and time.monotonic() < deadline:
        time.sleep(0.1)
    found = []
    for path in paths:
        with contextlib.suppress(OSError, ValueError):
            found.append(float(path.read_text()) * 1e3)
    return found


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {
        "median": statistics.median(ordered),
        "p95": p95,
        "min": ordered[0],
        "max": ordered[-1],
    }


def measure_latency(
    client: Any, deployment_id: uuid.UUID, marks: Path, runs: int, timeout: float
) -> dict[str, Any]:
    from anabranch.schemas import StateType
    from anabranch.schemas.deployments import DeploymentRunRequest

    samples: dict[str, list[float]] = {
        "pending": [], "process": [], "loaded": [], "running": [], "seen_final": []
    }
    states: dict[str, int] = {}
    problems: list[str] = []
    timed: list[uuid.UUID] = []
    for index in range(runs + 2):
        run = client.create_flow_run_from_deployment(deployment_id, DeploymentRunRequest())
        run = client.wait_for_flow_run(run.id, timeout)
        seen_final = time.time()
        state = run.state.type if run.state is not None else None
        if index < 2:  # warm-up: the worker's and the child's first imports, caches
            continue
        timed.append(run.id)
        name = state.value if state is not None else "NONE"
        states[name] = states.get(name, 0) + 1
        if state is not StateType.COMPLETED or run.start_time is None:
            problems.append(f"{run.id} {name}: {run.state.message if run.state else ''}")
            continue
        created = run.created.timestamp()
        pending = next(
            (r.state.timestamp for r in client.read_states(run.id)
             if r.state.type is StateType.PENDING),
            None,
        )
        try:
            forked, loaded = map(float, (marks / str(run.id)).read_text().split())
        except (OSError, ValueError) as exc:
            problems.append(f"{run.id}: no timings from its process ({exc})")
            continue
        if pending is None:
            problems.append(f"{run.id}: no Pending state")
            continue
        samples["pending"].append(pending.timestamp() - created)
        samples["process"].append(forked - created)
        samples["loaded"].append(loaded - created)
        samples["running"].append(run.start_time.timestamp() - created)
        if run.end_time is not None:
            samples["seen_final"].append(seen_final - run.end_time.timestamp())
        time.sleep(0.1)  # the child exits and the worker is back in its long poll
    cpu = _cpu_ms(marks, timed)
    return {
        "child_cpu_ms": _quantiles(cpu) if cpu else None,
        "runs": runs,
        "states": states,
        "problems": problems[:10],
        "ms": {key: {k: v * 1e3 for k, v in _quantiles(vals).items()}
               for key, vals in samples.items() if vals},
        "samples_ms": {key: [round(v * 1e3, 1) for v in vals] for key, vals in samples.items()},
    }


def measure_throughput(
    client: Any, deployment_id: uuid.UUID, marks: Path, runs: int, timeout: float
) -> dict[str, Any]:
    from anabranch.schemas.deployments import DeploymentRunRequest

    started = time.time()
    ids = [
        client.create_flow_run_from_deployment(
            deployment_id, DeploymentRunRequest(parameters={"i": i})
        ).id
        for i in range(runs)
    ]
    created = time.time()
    deadline = time.monotonic() + timeout
    final = []
    for run_id in ids:
        final.append(client.wait_for_flow_run(run_id, max(0.0, deadline - time.monotonic())))
    finished = time.time()
    states: dict[str, int] = {}
    problems = []
    for run in final:
        name = run.state.type.value if run.state is not None else "NONE"
        states[name] = states.get(name, 0) + 1
        if name != "COMPLETED" and len(problems) < 10:
            problems.append(f"{run.id} {name}: {run.state.message if run.state else ''}")
    starts = [r.start_time.timestamp() for r in final if r.start_time is not None]
    ends = [r.end_time.timestamp() for r in final if r.end_time is not None]
    events = sorted(
        [(r.start_time, 1) for r in final if r.start_time and r.end_time]
        + [(r.end_time, -1) for r in final if r.start_time and r.end_time],
        key=lambda e: (e[0], e[1]),
    )
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    wall = finished - started
    cpu = _cpu_ms(marks, ids)
    return {
        "child_cpu_ms": _quantiles(cpu) if cpu else None,
        "child_cpu_total_s": sum(cpu) / 1e3,
        "problems": problems,
        "runs": runs,
        "states": states,
        "create_s": created - started,
        "wall_s": wall,
        "runs_per_s": runs / wall,
        "first_start_s": min(starts) - started if starts else None,
        "last_end_s": max(ends) - started if ends else None,
        "max_running_at_once": most,
    }


def measure(api_url: str, folder: Path, latency_runs: int, throughput_runs: int,
            workers: int, timeout: float, worker_limit: int | None = None) -> dict[str, Any]:
    from anabranch.client.http import HTTPClient

    (folder / "bench_flows.py").write_text(textwrap.dedent(FLOWS))
    marks, bulk_marks = folder / "marks", folder / "bulk-marks"
    marks.mkdir()
    bulk_marks.mkdir()
    client = HTTPClient(api_url)
    ids = _deploy(client, folder, marks, bulk_marks)
    pool = Workers(folder, worker_limit)
    figures: dict[str, Any] = {"worker_command": pool.how}
    try:
        pool.start(1)
        pool.wait_online(client, 1)
        figures["latency"] = measure_latency(client, ids["probe"], marks, latency_runs, timeout)
        pool.start(workers - 1)
        pool.wait_online(client, workers)
        figures["throughput"] = measure_throughput(
            client, ids["tiny"], bulk_marks, throughput_runs, timeout
        )
        figures["throughput"]["workers"] = workers
    except Exception as exc:
        figures["error"] = f"{exc!r}; workers: {pool.tail()}"
    finally:
        pool.stop()
        client.close()
    errors = _errors_in_logs(folder)
    if errors:
        figures["log_errors"] = errors
    return figures


def _errors_in_logs(folder: Path, most: int = 5) -> list[str]:
    """The first tracebacks and error lines in the workers' logs (their children's stderr)."""
    found: list[str] = []
    for path in sorted(folder.glob("worker-*.log")):
        lines = path.read_text(errors="replace").splitlines()
        index = 0
        while index < len(lines) and len(found) < most:
            line = lines[index]
            if line.startswith("Traceback"):
                end = index + 1
                while end < len(lines) and lines[end].startswith((" ", "\t")):
                    end += 1
                found.append(" | ".join(lines[index : end + 1])[-1500:])
                index = end + 1
                continue
            if "can not start" in line or "ERROR" in line or "WARNING" in line:
                found.append(line[-500:])
            index += 1
    return found


# ---- the top: a server, and the driver in a process of its own ------------------------------


@contextlib.contextmanager
def _platform(home: Path) -> Iterator[str]:
    from bench_server import _server

    with _server(f"sqlite:///{home / 'server' / 'anabranch.db'}", home / "server") as api_url:
        yield api_url


def run(
    timeout: float = 300,
    latency_runs: int = 50,
    throughput_runs: int = 500,
    workers: int = 2,
    keep: bool = False,
    worker_limit: int | None = None,
) -> dict[str, Any]:
    """Both measurements against one fresh server; ``timeout`` bounds the driver process.
    ``keep`` keeps the temporary folder (server and worker logs, the store) and names it."""
    from bench_server import _clean_env

    figures: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": list(os.getloadavg())}
    home = Path(tempfile.mkdtemp(prefix="anabranch-bench-deployments-"))
    try:
        (home / "server").mkdir()
        project = home / "project"
        project.mkdir()
        with _platform(home) as api_url:
            env = _clean_env(
                ANABRANCH_HOME=str(home / "client"), ANABRANCH_API_URL=api_url,
                PYTHONUNBUFFERED="1",
            )
            command = [
                sys.executable, str(HERE), "--measure", "--api-url", api_url,
                "--folder", str(project), "--latency-runs", str(latency_runs),
                "--throughput-runs", str(throughput_runs), "--workers", str(workers),
                "--timeout", str(timeout),
            ] + (["--worker-limit", str(worker_limit)] if worker_limit else [])
            try:
                proc = subprocess.run(
                    command, capture_output=True, text=True, timeout=timeout * 2, env=env,
                    cwd=project, check=False, stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired:
                figures["error"] = f"the driver timed out after {timeout * 2:g} s"
            else:
                lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
                if proc.returncode != 0 or not lines:
                    tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                    figures["error"] = f"the driver failed ({proc.returncode}): {tail}"
                else:
                    figures.update(json.loads(lines[-1]))
    except Exception as exc:
        figures["error"] = repr(exc)
    finally:
        if any((figures.get(phase) or {}).get("problems") for phase in ("latency", "throughput")):
            keep = True  # the logs of runs that did not complete are worth reading
        if keep:
            figures["kept"] = str(home)
        else:
            shutil.rmtree(home, ignore_errors=True)
    figures["load_after"] = list(os.getloadavg())
    return figures


def report(figures: dict[str, Any]) -> str:
    from workloads import table

    lines = [
        f"{figures.get('cpus', '?')} CPUs; 1-minute load average "
        f"{figures['load_before'][0]:.1f} before, {figures['load_after'][0]:.1f} after; "
        f"server on SQLite; workers: {figures.get('worker_command', '?')}"
    ]
    if "error" in figures:
        lines.append(f"ERROR: {figures['error']}")
    if figures.get("kept"):
        lines.append(f"kept: {figures['kept']}")
    for phase in ("latency", "throughput"):
        problems = (figures.get(phase) or {}).get("problems")
        if problems:
            lines.append(f"{phase} runs that did not complete: " + "; ".join(problems))
    for error in figures.get("log_errors", []):
        lines.append(f"in the workers' logs: {error}")
    latency = figures.get("latency")
    if latency and latency.get("ms"):
        rows = []
        labels = {
            "pending": "created -> Pending (handed to the worker)",
            "process": "created -> child process forked",
            "loaded": "created -> flow module imported in the child",
            "running": "created -> run Running (start_time)",
        }
        for key, label in labels.items():
            q = latency["ms"].get(key)
            if q is None:
                continue
            target = "-"
            if key == "process":
                verdict = "PASS" if q["median"] < DISPATCH_TARGET_MS else "FAIL"
                target = f"< {DISPATCH_TARGET_MS:.0f} ms: {verdict}"
            rows.append([label, f"{q['median']:.0f}", f"{q['p95']:.0f}", f"{q['max']:.0f}",
                         target])
        lines.append(
            f"dispatch latency, {latency['runs']} runs one at a time through 1 idle worker "
            f"(final states: {latency['states']})"
        )
        lines.append(table(["from the run's creation to", "median ms", "p95 ms", "max ms",
                            "target"], rows))
        seen = latency["ms"].get("seen_final")
        if seen:
            lines.append(
                f"from a run's end_time to wait_for_flow_run returning: median "
                f"{seen['median']:.0f} ms, p95 {seen['p95']:.0f} ms"
            )
        cpu = latency.get("child_cpu_ms")
        if cpu:
            lines.append(
                f"CPU time of each child process (user + system, whole process): median "
                f"{cpu['median']:.0f} ms, p95 {cpu['p95']:.0f} ms"
            )
        lines.append(f"reference: {PREFECT_REFERENCE}")
    throughput = figures.get("throughput")
    if throughput and throughput.get("runs") and throughput.get("last_end_s") is not None:
        lines.append(
            f"throughput: {throughput['runs']} tiny runs through {throughput['workers']} "
            f"workers: {throughput['runs_per_s']:.1f} runs/s ({throughput['wall_s']:.1f} s "
            f"from the first creation to all seen final; creating them took "
            f"{throughput['create_s']:.1f} s; last end at {throughput['last_end_s']:.1f} s; "
            f"at most {throughput['max_running_at_once']} Running at once; final states "
            f"{throughput['states']})"
        )
        cpu = throughput.get("child_cpu_ms")
        if cpu:
            cpus = figures.get("cpus") or 1
            lines.append(
                f"  children's CPU: median {cpu['median']:.0f} ms each, "
                f"{throughput['child_cpu_total_s']:.0f} s in all; on {cpus} CPUs that alone "
                f"caps the rate at {cpus / (cpu['median'] / 1e3):.1f} runs/s"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--throughput-runs", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2, help="workers for the throughput")
    parser.add_argument(
        "--worker-limit", type=int, default=None, help="each worker's --limit (default: none)"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="per measurement")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (logs, store)"
    )
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure:
        result = measure(
            args.api_url, Path(args.folder), args.latency_runs, args.throughput_runs,
            args.workers, args.timeout, args.worker_limit,
        )
        print(json.dumps(result))
        return 0
    figures = run(
        args.timeout, args.latency_runs, args.throughput_runs, args.workers, args.keep,
        args.worker_limit,
    )
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
