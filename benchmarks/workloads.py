"""Benchmark workloads, written once against the API anabranch shares with Prefect 3.

The same code runs under ``import anabranch`` or ``import prefect``: each workload is built
from the package module it is given. Every workload also has a plain-Python baseline doing
the same work in the same process, so the figure that matters is the *overhead per item*:
``(orchestrated time - baseline time) / N``.

This file has two halves and imports nothing but the standard library at module level, so
any interpreter (the project's venv, the Prefect venv) can load it by path:

* the child side: ``python benchmarks/workloads.py --package anabranch --workload tasks``
  imports the package, runs a warm-up, times the baseline and the orchestrated flow, checks
  what the store recorded, and prints one ``BENCH_RESULT {json}`` line;
* the parent side: :func:`spawn` runs that in a fresh subprocess with a fresh temporary
  home (``ANABRANCH_HOME`` / ``PREFECT_HOME``) and a timeout, and returns the parsed result.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

RESULT_MARKER = "BENCH_RESULT "
HERE = Path(__file__).resolve().parent
PACKAGES = ("anabranch", "prefect")

# Workload name -> (default N, unit the overhead is reported in, target overhead per item in
# seconds). The targets are anabranch's; Prefect's figures are shown against them for scale.
WORKLOADS: dict[str, tuple[int, str, float]] = {
    "tasks": (1000, "us", 100e-6),
    "subflows_concurrent": (200, "ms", 1e-3),
    "subflows_sequential": (200, "ms", 1e-3),
}
DEFAULT_WORKERS = 10
WARMUP_N = 3


# --------------------------------------------------------------------------------------
# The work itself and its plain-Python baselines
# --------------------------------------------------------------------------------------


def noop(i: int) -> int:
    return i


def baseline_pool(n: int, workers: int) -> int:
    """What a task runner does, minus the orchestration: a pool, n submits, n results."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(noop, i) for i in range(n)]
        return sum(f.result() for f in futures)


def baseline_loop(n: int, workers: int) -> int:
    """What sequential subflows do, minus the orchestration: n plain calls."""
    total = 0
    for i in range(n):
        total += noop(i)
    return total


# --------------------------------------------------------------------------------------
# Workloads, built against a package module (anabranch or prefect)
# --------------------------------------------------------------------------------------


@dataclass
class Workload:
    """One workload built for one package.

    ``run(n)`` is the orchestrated flow call (the only thing timed); ``baseline(n, workers)``
    the plain-Python equivalent; ``parent_name`` names the flow whose newest run is the
    measured one; ``counts`` says which runs are expected: ``"task_runs"`` of the parent, or
    ``"flow_runs"`` of ``child_name``.
    """

    run: Callable[[int], Any]
    baseline: Callable[[int, int], int]
    parent_name: str
    counts: str
    child_name: str | None = None


def build(pkg: ModuleType, workload: str, workers: int) -> Workload:
    flow, task = pkg.flow, pkg.task
    runner_cls = importlib.import_module(f"{pkg.__name__}.task_runners").ThreadPoolTaskRunner

    if workload == "tasks":

        @task(name="bench-noop-task")
        def noop_task(i: int) -> int:
            return i

        @flow(name="bench-tasks", task_runner=runner_cls(max_workers=workers))
        def tasks_parent(n: int) -> int:
            futures = [noop_task.submit(i) for i in range(n)]
            return sum(f.result() for f in futures)

        return Workload(tasks_parent, baseline_pool, "bench-tasks", "task_runs")

    @flow(name="bench-child")
    def child(i: int) -> int:
        return i

    if workload == "subflows_concurrent":
        if pkg.__name__ == "anabranch":
            # anabranch has Flow.submit: the child flow runs on the parent's task runner.
            submit_child = child.submit
        else:
            # Prefect has no Flow.submit; its documented idiom wraps the subflow in a task.
            @task(name="bench-run-child")
            def run_child(i: int) -> int:
                return child(i)

            submit_child = run_child.submit

        @flow(name="bench-subflows-concurrent", task_runner=runner_cls(max_workers=workers))
        def concurrent_parent(n: int) -> int:
            futures = [submit_child(i) for i in range(n)]
            return sum(f.result() for f in futures)

        return Workload(
            concurrent_parent,
            baseline_pool,
            "bench-subflows-concurrent",
            "flow_runs",
            "bench-child",
        )

    if workload == "subflows_sequential":

        @flow(name="bench-subflows-sequential")
        def sequential_parent(n: int) -> int:
            total = 0
            for i in range(n):
                total += child(i)
            return total

        return Workload(
            sequential_parent,
            baseline_loop,
            "bench-subflows-sequential",
            "flow_runs",
            "bench-child",
        )

    raise ValueError(f"unknown workload {workload!r}; choose one of {sorted(WORKLOADS)}")


# --------------------------------------------------------------------------------------
# Reading back what the store recorded (package-specific: the read APIs differ)
# --------------------------------------------------------------------------------------


class AnabranchStore:
    """Counts through ``anabranch.client.get_client()`` (embedded store by default)."""

    def __init__(self) -> None:
        from anabranch.client import get_client

        self.client = get_client()

    def _flow_runs(self) -> list[Any]:
        return list(self.client.read_flow_runs(limit=None))

    def newest_run_id(self, flow_name: str) -> Any:
        runs = [r for r in self._flow_runs() if r.flow_name == flow_name]
        return max(runs, key=lambda r: r.created).id if runs else None

    def count_task_runs(self, flow_run_id: Any) -> int:
        return len(self.client.read_task_runs(flow_run_id=flow_run_id))

    def count_flow_runs(self, flow_name: str) -> int:
        return sum(1 for r in self._flow_runs() if r.flow_name == flow_name)

    def count_children(self, flow_run_id: Any) -> int | None:
        return sum(1 for r in self._flow_runs() if r.parent_flow_run_id == flow_run_id)

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()


class PrefectStore:
    """Counts through Prefect's sync client (its ephemeral server by default)."""

    PAGE = 200  # the server caps one read at PREFECT_API_DEFAULT_LIMIT (200)

    def __init__(self) -> None:
        from prefect import get_client

        self.client = get_client(sync_client=True)
        self.client.__enter__()

    def _name_filter(self, flow_name: str) -> Any:
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName

        return FlowFilter(name=FlowFilterName(any_=[flow_name]))

    def newest_run_id(self, flow_name: str) -> Any:
        from prefect.client.schemas.sorting import FlowRunSort

        runs = self.client.read_flow_runs(
            flow_filter=self._name_filter(flow_name), sort=FlowRunSort.START_TIME_DESC, limit=1
        )
        return runs[0].id if runs else None

    def count_task_runs(self, flow_run_id: Any) -> int:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        total, offset = 0, 0
        while True:
            page = self.client.read_task_runs(
                flow_run_filter=run_filter, limit=self.PAGE, offset=offset
            )
            total += len(page)
            offset += self.PAGE
            if len(page) < self.PAGE:
                return total

    def count_flow_runs(self, flow_name: str) -> int:
        return int(self.client.count_flow_runs(flow_filter=self._name_filter(flow_name)))

    def count_children(self, flow_run_id: Any) -> int | None:
        return None  # Prefect links a subflow to a task run, not to the parent flow run

    def close(self) -> None:
        self.client.__exit__(None, None, None)


def open_store(package: str) -> AnabranchStore | PrefectStore:
    return AnabranchStore() if package == "anabranch" else PrefectStore()


# --------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------


def _vm_hwm_kb(pid: int | str) -> int:
    """Peak resident set size of a live process, from /proc (Linux); 0 if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        for pid in children.get(stack.pop(), []):
            found.append(pid)
            stack.append(pid)
    return found


def peak_memory_mb() -> tuple[float, float]:
    """(peak RSS of this process, summed peak RSS of its live descendants) in MB.

    The second figure is Prefect's ephemeral API server subprocess; anabranch's embedded
    store runs in-process, so it has none.
    """
    import resource

    own_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
    children_kb = sum(_vm_hwm_kb(pid) for pid in _descendants(os.getpid()))
    return own_kb / 1024, children_kb / 1024


# --------------------------------------------------------------------------------------
# The child side: one workload, one package, one process
# --------------------------------------------------------------------------------------


def _count(store: AnabranchStore | PrefectStore, wl: Workload, parent_id: Any, before: int) -> int:
    if wl.counts == "task_runs":
        return store.count_task_runs(parent_id)
    assert wl.child_name is not None
    return store.count_flow_runs(wl.child_name) - before


def _settle(read: Callable[[], int], expected: int, timeout: float) -> int:
    """Re-read a count until it reaches ``expected`` or stops moving for 3 seconds."""
    deadline = time.monotonic() + timeout
    value, last_change = read(), time.monotonic()
    while value < expected and time.monotonic() < deadline:
        time.sleep(0.25)
        new = read()
        if new != value:
            value, last_change = new, time.monotonic()
        elif time.monotonic() - last_change > 3.0:
            break
    return value


def run_workload(
    package: str,
    workload: str,
    n: int,
    workers: int,
    repeats: int = 1,
    baseline_repeats: int = 5,
    settle: float = 15.0,
) -> dict[str, Any]:
    """Import ``package``, warm up, then time the baseline and ``repeats`` flow calls.

    The figures are medians; the run records are checked for the last flow call.
    """
    t0 = time.perf_counter()
    pkg = importlib.import_module(package)
    import_s = time.perf_counter() - t0
    wl = build(pkg, workload, workers)

    # Warm-up: the same flows at a tiny size, so imports, database creation and migration,
    # flow registration and (for Prefect) the ephemeral server start-up are not timed.
    t0 = time.perf_counter()
    wl.run(WARMUP_N)
    warmup_s = time.perf_counter() - t0

    store = open_store(package)
    try:
        baseline_times = []
        for _ in range(baseline_repeats):
            t0 = time.perf_counter()
            wl.baseline(n, workers)
            baseline_times.append(time.perf_counter() - t0)

        run_times = []
        for _ in range(repeats):
            # Counted before each call (untimed) so the check below covers the last call.
            child_before = store.count_flow_runs(wl.child_name) if wl.child_name else 0
            t0 = time.perf_counter()
            wl.run(n)
            run_times.append(time.perf_counter() - t0)

        parent_id = store.newest_run_id(wl.parent_name)
        recorded_at_return = _count(store, wl, parent_id, child_before)
        recorded = (
            _settle(lambda: _count(store, wl, parent_id, child_before), n, settle)
            if recorded_at_return < n
            else recorded_at_return
        )
        linked = store.count_children(parent_id) if wl.counts == "flow_runs" else None
    finally:
        store.close()

    baseline_s = statistics.median(baseline_times)
    orchestrated_s = statistics.median(run_times)
    own_mb, children_mb = peak_memory_mb()
    return {
        "package": package,
        "version": getattr(pkg, "__version__", "?"),
        "workload": workload,
        "n": n,
        "workers": workers,
        "import_s": import_s,
        "warmup_s": warmup_s,
        "baseline_s": baseline_s,
        "orchestrated_s": orchestrated_s,
        "orchestrated_runs_s": run_times,
        "overhead_per_item_s": (orchestrated_s - baseline_s) / n,
        "counts": wl.counts,
        "expected": n,
        "parent_found": parent_id is not None,
        "recorded_at_return": recorded_at_return,
        "recorded": recorded,
        "linked_to_parent": linked,
        "peak_rss_mb": own_mb,
        "server_peak_rss_mb": children_mb,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", choices=PACKAGES, required=True)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    parser.add_argument("--n", type=int, default=None, help="items (default per workload)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--repeats", type=int, default=1, help="flow calls timed (median)")
    parser.add_argument("--baseline-repeats", type=int, default=5)
    parser.add_argument(
        "--settle",
        type=float,
        default=15.0,
        help="seconds to wait for late run records after the flow returns (not timed)",
    )
    args = parser.parse_args(argv)
    n = args.n or WORKLOADS[args.workload][0]
    result = run_workload(
        args.package,
        args.workload,
        n,
        args.workers,
        repeats=args.repeats,
        baseline_repeats=args.baseline_repeats,
        settle=args.settle,
    )
    sys.stdout.write(RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------------------
# The parent side: a fresh subprocess and a fresh home per workload
# --------------------------------------------------------------------------------------


def clean_env(package: str, home: str, log_level: str | None) -> dict[str, str]:
    """The caller's environment without any ANABRANCH_*/PREFECT_* setting, plus a fresh home.

    With PREFECT_API_URL unset Prefect starts its ephemeral API server; with
    ANABRANCH_API_URL unset anabranch uses its embedded SQLite store. ``log_level`` None
    keeps each package's default console logging (INFO for both).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANABRANCH_", "PREFECT_"))}
    env["PYTHONUNBUFFERED"] = "1"
    if package == "anabranch":
        env["ANABRANCH_HOME"] = home
        if log_level:
            env["ANABRANCH_LOGGING_LEVEL"] = log_level
    else:
        env["PREFECT_HOME"] = home
        # No phoning home from a benchmark (there is no network here anyway).
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        env["DO_NOT_TRACK"] = "1"
        if log_level:
            env["PREFECT_LOGGING_LEVEL"] = log_level
    return env


def spawn(
    python: str,
    package: str,
    workload: str,
    n: int | None = None,
    *,
    workers: int = DEFAULT_WORKERS,
    repeats: int = 1,
    log_level: str | None = None,
    timeout: float = 600.0,
    keep_home: bool = False,
) -> dict[str, Any]:
    """Run one workload in a fresh subprocess of ``python``; return its result dict.

    On failure the dict has ``error`` (and the tail of the child's stderr) instead.
    """
    home = tempfile.mkdtemp(prefix=f"bench-{package}-{workload}-")
    stderr_path = Path(home) / "stderr.log"
    cmd = [
        python,
        str(HERE / "workloads.py"),
        "--package",
        package,
        "--workload",
        workload,
        "--workers",
        str(workers),
        "--repeats",
        str(repeats),
    ]
    if n:
        cmd += ["--n", str(n)]
    base: dict[str, Any] = {
        "package": package,
        "workload": workload,
        "n": n or WORKLOADS[workload][0],
    }
    try:
        with open(stderr_path, "wb") as err:
            # A session of its own, so a timeout ends the whole group: Prefect's ephemeral
            # API server is a grandchild that would otherwise outlive the benchmark.
            proc = subprocess.Popen(
                cmd,
                cwd=home,
                env=clean_env(package, home, log_level),
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
            try:
                stdout, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                return {
                    **base,
                    "error": f"timed out after {timeout:g} s",
                    "stderr_tail": _tail(stderr_path),
                }
        for line in reversed(stdout.decode(errors="replace").splitlines()):
            if line.startswith(RESULT_MARKER):
                return json.loads(line[len(RESULT_MARKER) :])
        return {
            **base,
            "error": f"exit code {proc.returncode}, no result",
            "stderr_tail": _tail(stderr_path),
        }
    finally:
        if not keep_home:
            shutil.rmtree(home, ignore_errors=True)


def spawn_median(
    python: str,
    package: str,
    workload: str,
    n: int | None = None,
    *,
    processes: int = 1,
    **kwargs: Any,
) -> dict[str, Any]:
    """Run a workload in ``processes`` fresh processes; return the median run's result.

    Each process times one flow call after its warm-up, so no call pays for the records or
    the backlog of an earlier one. The returned dict is the run with the median flow-call
    time, plus every run's time (``orchestrated_all_s``), the fewest runs recorded and the
    highest peak memory of them all. The first failure, if any, is returned instead.
    """
    runs = []
    for _ in range(processes):
        res = spawn(python, package, workload, n, **kwargs)
        if "error" in res:
            return res
        runs.append(res)
    runs.sort(key=lambda r: r["orchestrated_s"])
    result = dict(runs[(len(runs) - 1) // 2])
    result["processes"] = len(runs)
    result["orchestrated_all_s"] = [r["orchestrated_s"] for r in runs]
    for key in ("recorded", "recorded_at_return"):
        result[key] = min(r[key] for r in runs)
    result["parent_found"] = all(r["parent_found"] for r in runs)
    for key in ("peak_rss_mb", "server_peak_rss_mb"):
        result[key] = max(r[key] for r in runs)
    return result


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def import_time_ms(
    python: str, module: str, runs: int = 5, timeout: float = 120.0
) -> dict[str, Any]:
    """Best-of-``runs`` cumulative import time of ``module`` from ``python -X importtime``.

    The first run also fills the bytecode cache. Returns the best total in ms and, from the
    best run, the modules with the largest self time (where to look when it grows).
    """
    best: tuple[float, list[tuple[float, str]]] | None = None
    for _ in range(runs):
        proc = subprocess.run(
            [python, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={
                k: v for k, v in os.environ.items() if not k.startswith(("ANABRANCH_", "PREFECT_"))
            },
        )
        if proc.returncode != 0:
            return {"module": module, "error": proc.stderr.strip().splitlines()[-1:]}
        total, selfs = None, []
        for line in proc.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cumulative_us, name = (p.strip() for p in line[12:].split("|"))
            selfs.append((int(self_us) / 1000, name.strip()))
            if name == module:  # top level: not indented
                total = int(cumulative_us) / 1000
        if total is not None and (best is None or total < best[0]):
            best = (total, selfs)
    if best is None:
        return {"module": module, "error": "no import time line found"}
    heaviest = sorted(best[1], reverse=True)[:5]
    return {"module": module, "total_ms": best[0], "heaviest_self_ms": heaviest}


# --------------------------------------------------------------------------------------
# Reporting helpers shared by run.py and compare.py
# --------------------------------------------------------------------------------------


def fmt_per_item(seconds: float | None, unit: str) -> str:
    """An overhead per item in the workload's unit ("us" or "ms")."""
    if seconds is None:
        return "-"
    return f"{seconds * 1e6:.1f} µs" if unit == "us" else f"{seconds * 1e3:.2f} ms"


def fmt_recorded(result: dict[str, Any]) -> str:
    """``recorded/expected``; ``at_return→settled/expected`` when records arrived late."""
    if "error" in result:
        return "-"
    expected, settled = result["expected"], result["recorded"]
    at_return = result["recorded_at_return"]
    text = f"{settled}/{expected}" if at_return == settled else f"{at_return}→{settled}/{expected}"
    linked = result.get("linked_to_parent")
    if linked is not None and linked != settled:
        text += f" ({linked} linked to the parent)"
    if not result["parent_found"]:
        text += " (no parent run!)"
    elif settled < expected:
        text += " MISSING"
    return text


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def save_results(kind: str, payload: dict[str, Any]) -> Path:
    """Write a run's raw figures to benchmarks/.results/ (git-ignored) and return the path."""
    folder = HERE / ".results"
    folder.mkdir(exist_ok=True)
    path = folder / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


if __name__ == "__main__":
    raise SystemExit(main())
