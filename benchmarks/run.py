"""`make bench`: anabranch's benchmarks, each measured against a plain-Python baseline.

Sections run in order and each prints its own table; add one by writing a function
``section_x(args, results) -> None`` and registering it in ``SECTIONS``. ``results`` is a
dict the section fills with its raw figures, saved to ``benchmarks/.results/``.

A benchmark is not a test: this script exits 0 whatever it measures, and says plainly
which figures miss their targets.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import bench_concurrency
import bench_deployments
import bench_server
import events
import ui
from workloads import (
    HERE,
    WORKLOADS,
    fmt_per_item,
    fmt_recorded,
    import_time_ms,
    save_results,
    spawn_median,
    table,
)

PYTHON = sys.executable  # the project's venv when run through `make bench`
IMPORT_TARGET_MS = 150.0
ENGINE_CHECK = (
    "from anabranch import flow, task; from anabranch.task_runners import ThreadPoolTaskRunner; "
    "from anabranch.client import get_client"
)

Section = Callable[[argparse.Namespace, dict[str, Any]], None]


def section_import_time(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Cold `import anabranch`, best of a few runs of `python -X importtime`."""
    figures = import_time_ms(PYTHON, "anabranch", runs=args.import_runs)
    results["import_time"] = figures
    if "error" in figures:
        print(f"import anabranch failed: {figures['error']}")
        return
    total = figures["total_ms"]
    verdict = "PASS" if total < IMPORT_TARGET_MS else "FAIL"
    print(
        f"import anabranch: {total:.1f} ms (best of {args.import_runs}); "
        f"target < {IMPORT_TARGET_MS:.0f} ms: {verdict}"
    )
    heaviest = ", ".join(f"{name} {ms:.1f} ms" for ms, name in figures["heaviest_self_ms"])
    print(f"  largest self times: {heaviest}")


def section_workloads(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Tasks, concurrent subflows and sequential subflows against their baselines."""
    check = subprocess.run(
        [PYTHON, "-c", ENGINE_CHECK], capture_output=True, text=True, timeout=120, check=False
    )
    if check.returncode != 0:
        reason = (check.stderr.strip().splitlines() or ["?"])[-1]
        print(f"skipped: the engine API is not importable yet ({reason})")
        results["workloads"] = {"skipped": reason}
        return

    rows, raw = [], []
    for name in args.workloads:
        default_n, unit, target = WORKLOADS[name]
        n = (args.n_tasks if name == "tasks" else args.n_subflows) or default_n
        print(f"  running {name} (N={n}) ...", flush=True)
        res = spawn_median(
            PYTHON,
            "anabranch",
            name,
            n,
            processes=args.processes,
            log_level=args.log_level,
            timeout=args.timeout,
        )
        raw.append(res)
        target_text = f"≤ {fmt_per_item(target, unit)}"
        if "error" in res:
            rows.append([name, str(n), "ERROR", "-", "-", target_text, "-", "-", "-"])
            print(f"  {name} failed: {res['error']}\n{res.get('stderr_tail', '')}")
            continue
        per_item = res["overhead_per_item_s"]
        rows.append(
            [
                name,
                str(n),
                f"{res['orchestrated_s']:.3f}",
                f"{res['baseline_s']:.4f}",
                fmt_per_item(per_item, unit),
                target_text,
                "PASS" if per_item <= target else "FAIL",
                f"{res['peak_rss_mb']:.0f}",
                fmt_recorded(res),
            ]
        )
    results["workloads"] = raw
    print(
        f"times: median of {args.processes} fresh process(es) per workload, each timing one "
        "flow call after a warm-up; overhead/item = (anabranch - baseline) / N"
    )
    print(
        table(
            [
                "workload",
                "N",
                "anabranch s",
                "baseline s",
                "overhead/item",
                "target",
                "vs target",
                "peak MB",
                "runs recorded",
            ],
            rows,
        )
    )


def section_write_batch(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """The background writer: one batch of N task runs + 3N states on a fresh SQLite file."""
    command = [
        PYTHON,
        str(HERE / "write_batch.py"),
        "--json",
        "--n-tasks",
        str(args.n_tasks or 1000),
        "--repeats",
        str(args.batch_repeats),
    ]
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=args.timeout, check=False
    )
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"write_batch failed: {reason}")
        results["write_batch"] = {"error": reason}
        return
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    results["write_batch"] = figures
    n = figures["n_tasks"]
    rows = [
        [
            label,
            f"{figures[key + '_wall_s'] * 1e3:.1f}",
            f"{figures[key + '_cpu_s'] * 1e3:.1f}",
            f"{figures[key + '_wall_s'] / n * 1e6:.1f} µs",
        ]
        for label, key in (
            ("EmbeddedClient.write_batch", "apply_batch"),
            ("sqlite3 replay (floor)", "sqlite3"),
        )
    ]
    print(
        f"{n} task runs + {figures['n_states']} states, median of {figures['repeats']}, each "
        "on a fresh SQLite file; the floor replays the same SQL and rows through plain sqlite3"
    )
    print(table(["writer", "wall ms", "CPU ms", "wall per task run"], rows))


def section_concurrency(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Concurrency limits: acquire+release rates and release-to-next-waiter latency."""
    figures = bench_concurrency.run(timeout=args.timeout)
    results["concurrency"] = figures
    print(bench_concurrency.report(figures))


def section_server(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Server mode: a 1,000-task flow through `anabranch server start`, and concurrent writers."""
    figures = bench_server.run(timeout=args.timeout)
    results["server"] = figures
    print(bench_server.report(figures))


def section_deployments(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Deployment runs through a real server and worker processes: latency, throughput."""
    figures = bench_deployments.run(timeout=args.timeout)
    results["deployments"] = figures
    print(bench_deployments.report(figures))


def section_ui(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """The web UI: a 10,000-child run in a 100,000-run store, over HTTP and in Chromium."""
    figures = ui.run(timeout=args.timeout)
    results["ui"] = figures
    print(ui.report(figures))


def section_events(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Events and automations: the event trigger's cost, events/s, Failed -> webhook latency."""
    figures = events.run(timeout=args.timeout, n_tasks=args.n_tasks or 1000)
    results["events"] = figures
    print(events.report(figures))


SECTIONS: list[tuple[str, Section]] = [
    ("import", section_import_time),
    ("write_batch", section_write_batch),
    ("workloads", section_workloads),
    ("concurrency", section_concurrency),
    ("server", section_server),
    ("deployments", section_deployments),
    ("ui", section_ui),
    ("events", section_events),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        choices=[name for name, _ in SECTIONS],
        action="append",
        help="run only this section (repeatable)",
    )
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--n-tasks", type=int, default=None, help="default 1000")
    parser.add_argument("--n-subflows", type=int, default=None, help="default 200")
    parser.add_argument(
        "--processes",
        type=int,
        default=3,
        help="fresh processes per workload, each timing one flow call (median reported)",
    )
    parser.add_argument("--import-runs", type=int, default=5)
    parser.add_argument(
        "--batch-repeats", type=int, default=20, help="batches timed by write_batch (median)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds before one workload's subprocess is killed",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        help="ANABRANCH_LOGGING_LEVEL for the runs (default: the package's)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {"python": PYTHON, "log_level": args.log_level or "default"}
    for name, section in SECTIONS:
        if args.only and name not in args.only:
            continue
        print(f"\n== {name}: {(section.__doc__ or '').strip()}")
        try:
            section(args, results)
        except Exception as exc:  # one broken section must not hide the others
            print(f"section {name} crashed: {exc!r}")
            results[name] = {"crashed": repr(exc)}
    print(f"\nraw figures: {save_results('bench', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
