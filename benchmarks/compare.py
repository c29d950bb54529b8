"""`make bench-compare`: the same workloads under Prefect 3 and anabranch, in the same run.

Prefect runs from its own venv, ``benchmarks/.prefect-venv`` (git-ignored), created here
when missing; anabranch runs from the interpreter running this script (the project venv
under `make`). Each workload runs in a fresh subprocess with a fresh home, after a warm-up
flow run in that process, so Prefect's ephemeral API server start-up and anabranch's
database creation are not timed. Ratios are Prefect / anabranch: above 1 means anabranch
is faster.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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

PREFECT_VERSION = "3.8.8"
FASTAPI_VERSION = "0.150.0"  # pinned with Prefect: its server needs a compatible FastAPI
PREFECT_VENV = HERE / ".prefect-venv"
PREFECT_PYTHON = PREFECT_VENV / "bin" / "python"
ANABRANCH_PYTHON = sys.executable


def _installed_versions(python: Path) -> str | None:
    if not python.exists():
        return None
    proc = subprocess.run(
        [
            str(python),
            "-c",
            "import prefect, fastapi as f; print(prefect.__version__, f.__version__)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_prefect_venv() -> None:
    """Create benchmarks/.prefect-venv with the pinned Prefect unless it is already there."""
    wanted = f"{PREFECT_VERSION} {FASTAPI_VERSION}"
    found = _installed_versions(PREFECT_PYTHON)
    if found == wanted:
        print(
            f"prefect venv: {PREFECT_VENV} (prefect {PREFECT_VERSION}, fastapi {FASTAPI_VERSION})"
        )
        return
    if not PREFECT_PYTHON.exists():
        base = shutil.which("python3") or sys.executable
        print(f"prefect venv: creating {PREFECT_VENV} with {base} -m venv ...", flush=True)
        subprocess.run([base, "-m", "venv", str(PREFECT_VENV)], check=True, timeout=300)
    else:
        print(f"prefect venv: found {found or 'an incomplete install'}; reinstalling pins ...")
    print(
        f"prefect venv: pip install prefect=={PREFECT_VERSION} fastapi=={FASTAPI_VERSION} "
        "(a few minutes the first time) ...",
        flush=True,
    )
    subprocess.run(
        [
            str(PREFECT_PYTHON),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"prefect=={PREFECT_VERSION}",
            f"fastapi=={FASTAPI_VERSION}",
        ],
        check=True,
        timeout=1800,
    )
    found = _installed_versions(PREFECT_PYTHON)
    if found != wanted:
        raise SystemExit(f"prefect venv: expected '{wanted}', found '{found}'")
    print("prefect venv: ready")


def _ok(res: dict[str, Any] | None) -> dict[str, Any] | None:
    """The result if the workload ran, else None."""
    return res if res is not None and "error" not in res else None


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "-"
    return f"{a / b:.1f}x"


def _cell(res: dict[str, Any] | None, key: str, fmt: str = "{:.3f}") -> str:
    if res is None:
        return "skipped"
    if "error" in res:
        return "ERROR"
    return fmt.format(res[key])


def _peak(res: dict[str, Any] | None) -> str:
    if res is None or "error" in res:
        return "-"
    text = f"{res['peak_rss_mb']:.0f}"
    if res.get("server_peak_rss_mb"):
        text += f" (+{res['server_peak_rss_mb']:.0f} server)"
    return text


def compare_imports(packages: list[str], runs: int) -> dict[str, Any]:
    pythons = {"prefect": str(PREFECT_PYTHON), "anabranch": ANABRANCH_PYTHON}
    figures = {pkg: import_time_ms(pythons[pkg], pkg, runs=runs) for pkg in packages}
    ms = {pkg: f.get("total_ms") for pkg, f in figures.items()}
    parts = [
        f"import {pkg}: "
        + (f"{v:.1f} ms" if v is not None else f"failed ({figures[pkg].get('error')})")
        for pkg, v in ms.items()
    ]
    line = "; ".join(parts)
    if len(ms) == 2:
        line += f"; ratio {_ratio(ms['prefect'], ms['anabranch'])}"
    print(line + f" (best of {runs})")
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--packages", nargs="+", choices=["prefect", "anabranch"], default=["prefect", "anabranch"]
    )
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--n-tasks", type=int, default=None, help="default 1000")
    parser.add_argument("--n-subflows", type=int, default=None, help="default 200")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="fresh processes per workload and package, each timing one flow call (median "
        "reported); Prefect's subflow workloads take minutes per process",
    )
    parser.add_argument("--import-runs", type=int, default=5)
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds before one workload's subprocess is killed",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        help="PREFECT_/ANABRANCH_LOGGING_LEVEL (default: each package's)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    packages = list(args.packages)
    if "prefect" in packages:
        ensure_prefect_venv()
    pythons = {"prefect": str(PREFECT_PYTHON), "anabranch": ANABRANCH_PYTHON}
    print(f"logging: {args.log_level or 'each package default (INFO to stderr, captured)'}")

    print("\n== import time")
    results: dict[str, Any] = {
        "imports": compare_imports(packages, args.import_runs),
        "workloads": [],
    }

    print(
        f"\n== workloads (one flow call per process after a warm-up, median of "
        f"{args.processes} process(es); ratio = prefect / anabranch)"
    )
    rows = []
    for name in args.workloads:
        _, unit, _ = WORKLOADS[name]
        n = (args.n_tasks if name == "tasks" else args.n_subflows) or WORKLOADS[name][0]
        got: dict[str, dict[str, Any] | None] = {"prefect": None, "anabranch": None}
        for pkg in packages:
            print(f"  running {name} (N={n}) under {pkg} ...", flush=True)
            res = spawn_median(
                pythons[pkg],
                pkg,
                name,
                n,
                processes=args.processes,
                log_level=args.log_level,
                timeout=args.timeout,
            )
            if "error" in res:
                print(f"  {pkg} {name} failed: {res['error']}\n{res.get('stderr_tail', '')}")
            got[pkg] = res
            results["workloads"].append(res)
        p, a = got["prefect"], got["anabranch"]
        pok, aok = _ok(p), _ok(a)
        rows.append(
            [
                name,
                str(n),
                _cell(p, "orchestrated_s"),
                _cell(a, "orchestrated_s"),
                _ratio(pok and pok["orchestrated_s"], aok and aok["orchestrated_s"]),
                fmt_per_item(pok and pok["overhead_per_item_s"], unit),
                fmt_per_item(aok and aok["overhead_per_item_s"], unit),
                _ratio(pok and pok["overhead_per_item_s"], aok and aok["overhead_per_item_s"]),
                fmt_recorded(p) if p else "-",
                fmt_recorded(a) if a else "-",
                _peak(p),
                _peak(a),
            ]
        )
    print(
        table(
            [
                "workload",
                "N",
                "prefect s",
                "anabranch s",
                "ratio",
                "prefect/item",
                "anabranch/item",
                "ratio/item",
                "prefect recorded",
                "anabranch recorded",
                "prefect peak MB",
                "anabranch peak MB",
            ],
            rows,
        )
    )
    print(
        "recorded: runs found in each API after the flow returned; a→b means a at return "
        "and b once the count stopped moving for 3 s (at most 15 s; not timed)."
    )
    print(f"\nraw figures: {save_results('compare', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
