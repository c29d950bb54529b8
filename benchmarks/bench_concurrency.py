"""What a concurrency slot costs: acquire+release throughput and release-to-next-start latency.

Usage: python benchmarks/bench_concurrency.py [--ops 3000] [--seconds 2] [--processes 4]
       [--handoffs 50] [--timeout 120] [--json]

Measurements (each in a fresh process with a fresh temporary ANABRANCH_HOME, killed after
``--timeout`` seconds):

- ``single``: one thread entering and leaving ``concurrency("bench")`` (a limit of 10) ``--ops``
  times in a row, after a warm-up; wall and process CPU time (CPU time moves less when other
  work shares the machine). Floor: the two write transactions an acquire and a release
  need at least (insert a row, delete it), in plain ``sqlite3`` on a file with the store's
  pragmas (WAL, synchronous=NORMAL).
- ``contended_1`` / ``contended_10``: ``--processes`` processes, released together by a barrier,
  loop on one limit of 1 (of 10) for ``--seconds``; the figure is their total acquire+release
  per second.
- ``handoff_threads`` / ``handoff_processes``: A holds a limit of 1 while B waits for it (its
  place in line is in the store); A notes the time and leaves its block; B notes the time it
  gets in. ``--handoffs`` rounds, median and p95. Across processes both read CLOCK_MONOTONIC
  (``time.monotonic()``), which Linux shares between processes. Baselines: the same handoff
  through a ``threading.Lock`` / ``multiprocessing.Lock``.

``run()`` returns every figure as a dict (for ``benchmarks/run.py``); ``main()`` prints them
against the targets: > 2,000 acquire+release/s in one process, < 20 ms from a release to the
next waiter's start.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
SINGLE_TARGET_OPS = 2000.0
HANDOFF_TARGET_MS = 20.0
MEASUREMENTS = (
    "single", "contended_1", "contended_10", "handoff_threads", "handoff_processes",
)


# ---- inside a measurement process (ANABRANCH_HOME is a fresh temporary folder) -------------


def measure_single(ops: int) -> dict[str, Any]:
    from anabranch.client import get_client
    from anabranch.concurrency.sync import concurrency

    get_client().create_concurrency_limit("bench", 10)
    for _ in range(min(ops, 200)):
        with concurrency("bench"):
            pass
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(ops):
        with concurrency("bench"):
            pass
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    floor = _sqlite_floor(ops)
    return {
        "ops": ops,
        "elapsed_s": elapsed,
        "ops_per_s": ops / elapsed,
        "us_per_op": elapsed / ops * 1e6,
        "cpu_us_per_op": cpu / ops * 1e6,
        "floor_ops_per_s": ops / floor,
        "floor_us_per_op": floor / ops * 1e6,
    }


def _sqlite_floor(ops: int) -> float:
    """Seconds for ``ops`` pairs of write transactions (insert a lease, delete it)."""
    with tempfile.TemporaryDirectory() as folder:
        db = sqlite3.connect(Path(folder) / "floor.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE lease (id INTEGER PRIMARY KEY, holder TEXT, expires REAL)")
        started = time.perf_counter()
        for i in range(ops):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO lease VALUES (?, ?, ?)", (i, "holder", time.time() + 30))
            db.execute("COMMIT")
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM lease WHERE id = ?", (i,))
            db.execute("COMMIT")
        elapsed = time.perf_counter() - started
        db.close()
    return elapsed


def _contender(name: str, seconds: float, barrier: Any, counts: Any, index: int) -> None:
    from anabranch.concurrency.sync import concurrency

    for _ in range(20):  # warm-up: imports, connections
        with concurrency(name):
            pass
    barrier.wait()
    count, started = 0, time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        with concurrency(name):
            pass
        count += 1
    counts[index] = (count, time.monotonic() - started)


def measure_contended(limit: int, processes: int, seconds: float) -> dict[str, Any]:
    from anabranch.client import get_client

    get_client().create_concurrency_limit("contended", limit)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    with context.Manager() as manager:
        counts = manager.dict()
        workers = [
            context.Process(target=_contender, args=("contended", seconds, barrier, counts, i))
            for i in range(processes)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=seconds + 60)
            if worker.is_alive():
                worker.kill()
        finished = dict(counts)
    if len(finished) != processes:
        raise RuntimeError(f"only {len(finished)} of {processes} contenders finished")
    total = sum(count for count, _ in finished.values())
    elapsed = max(took for _, took in finished.values())
    return {
        "limit": limit,
        "processes": processes,
        "seconds": elapsed,
        "total_ops": total,
        "ops_per_s": total / elapsed,
        "per_process_ops": [finished[i][0] for i in range(processes)],
    }


def _wait_for_waiter(client: Any, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while client.read_concurrency_limit(name).waiting < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the waiter never queued")
        time.sleep(0.001)


def _summary(latencies: list[float], baseline: list[float]) -> dict[str, Any]:
    def ms(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "median_ms": statistics.median(ordered) * 1e3,
            "p95_ms": ordered[max(0, round(0.95 * len(ordered)) - 1)] * 1e3,
            "max_ms": ordered[-1] * 1e3,
        }

    return {"handoffs": len(latencies), **ms(latencies), "baseline": ms(baseline)}


def measure_handoff_threads(handoffs: int) -> dict[str, Any]:
    from anabranch.client import get_client
    from anabranch.concurrency.sync import concurrency

    client = get_client()
    client.create_concurrency_limit("handoff", 1)
    latencies = []
    for _ in range(handoffs + 3):  # the first rounds warm up the broker thread
        got_in: list[float] = []

        def waiter(got_in: list[float] = got_in) -> None:
            with concurrency("handoff"):
                got_in.append(time.perf_counter())

        with concurrency("handoff"):
            thread = threading.Thread(target=waiter)
            thread.start()
            _wait_for_waiter(client, "handoff")
            released = time.perf_counter()
        thread.join(timeout=30)
        latencies.append(got_in[0] - released)
    return _summary(latencies[3:], _lock_handoffs(threading.Lock, threading.Thread, handoffs))


def _lock_handoffs(make_lock: Any, make_worker: Any, handoffs: int) -> list[float]:
    """Baseline: the same handoff through a plain lock (thread or process)."""
    latencies = []
    context = multiprocessing.get_context("spawn")
    for _ in range(handoffs):
        lock = make_lock()
        queued = context.Event() if make_worker is not threading.Thread else threading.Event()
        got_in = context.Queue() if make_worker is not threading.Thread else _ListQueue()
        lock.acquire()
        worker = make_worker(target=_lock_waiter, args=(lock, queued, got_in))
        worker.start()
        queued.wait(30)
        time.sleep(0.005)  # let the waiter block inside acquire()
        released = time.monotonic()
        lock.release()
        latencies.append(got_in.get(timeout=30) - released)
        worker.join(timeout=30)
    return latencies


class _ListQueue:
    def __init__(self) -> None:
        self._items: list[float] = []
        self._ready = threading.Event()

    def put(self, item: float) -> None:
        self._items.append(item)
        self._ready.set()

    def get(self, timeout: float) -> float:
        self._ready.wait(timeout)
        return self._items[0]


def _lock_waiter(lock: Any, queued: Any, got_in: Any) -> None:
    queued.set()
    with lock:
        got_in.put(time.monotonic())


def _handoff_role(role: str, commands: Any, replies: Any) -> None:
    from anabranch.concurrency.sync import concurrency

    with concurrency("warm-up"):
        pass
    replies.put(("ready", role))
    while True:
        command = commands.get()
        if command == "stop":
            return
        if role == "holder":
            with concurrency("handoff"):
                replies.put(("holding", 0.0))
                commands.get()  # "release"
                released = time.monotonic()
            replies.put(("released", released))
        else:
            with concurrency("handoff"):
                got_in = time.monotonic()
            replies.put(("in", got_in))


def measure_handoff_processes(handoffs: int) -> dict[str, Any]:
    from anabranch.client import get_client

    client = get_client()
    client.create_concurrency_limit("handoff", 1)
    client.create_concurrency_limit("warm-up", 10)
    context = multiprocessing.get_context("spawn")
    holder_commands, waiter_commands = context.Queue(), context.Queue()
    holder_replies, waiter_replies = context.Queue(), context.Queue()
    roles = [
        context.Process(target=_handoff_role, args=("holder", holder_commands, holder_replies)),
        context.Process(target=_handoff_role, args=("waiter", waiter_commands, waiter_replies)),
    ]
    for process in roles:
        process.start()
    try:
        holder_replies.get(timeout=60)
        waiter_replies.get(timeout=60)
        latencies = []
        for _ in range(handoffs + 3):
            holder_commands.put("hold")
            holder_replies.get(timeout=30)  # holding
            waiter_commands.put("wait")
            _wait_for_waiter(client, "handoff")
            holder_commands.put("release")
            _, released = holder_replies.get(timeout=30)
            _, got_in = waiter_replies.get(timeout=30)
            latencies.append(got_in - released)
    finally:
        holder_commands.put("stop")
        waiter_commands.put("stop")
        for process in roles:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    baseline = _lock_handoffs(context.Lock, context.Process, min(handoffs, 10))
    return _summary(latencies[3:], baseline)


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    if name == "single":
        return measure_single(args.ops)
    if name.startswith("contended_"):
        return measure_contended(int(name.split("_")[1]), args.processes, args.seconds)
    if name == "handoff_threads":
        return measure_handoff_threads(args.handoffs)
    if name == "handoff_processes":
        return measure_handoff_processes(args.handoffs)
    raise ValueError(f"unknown measurement {name!r}")


# ---- the driver ---------------------------------------------------------------------------


def _spawn_measurement(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one measurement in a fresh process on a fresh temporary home."""
    with tempfile.TemporaryDirectory(prefix="anabranch-bench-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANABRANCH_")}
        env.update(ANABRANCH_HOME=home, ANABRANCH_LOGGING_LEVEL="WARNING")
        command = [
            sys.executable, str(HERE), "--measure", name, "--ops", str(args.ops),
            "--seconds", str(args.seconds), "--processes", str(args.processes),
            "--handoffs", str(args.handoffs),
        ]
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, timeout=args.timeout, env=env,
                cwd=home, check=False,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {args.timeout:g} s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(
    ops: int = 3000,
    seconds: float = 2.0,
    processes: int = 4,
    handoffs: int = 50,
    timeout: float = 120.0,
    only: list[str] | None = None,
) -> dict[str, Any]:
    """Every measurement (or ``only`` some), each in a fresh process and home."""
    args = argparse.Namespace(
        ops=ops, seconds=seconds, processes=processes, handoffs=handoffs, timeout=timeout
    )
    return {name: _spawn_measurement(name, args) for name in (only or MEASUREMENTS)}


def report(figures: dict[str, Any]) -> str:
    lines = []

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    single = figures.get("single")
    if single is not None:
        if "error" in single:
            lines.append(f"single process: ERROR {single['error']}")
        else:
            lines.append(
                f"1 process, sequential: {single['ops_per_s']:,.0f} acquire+release/s "
                f"({single['us_per_op']:.0f} µs each, {single['cpu_us_per_op']:.0f} µs CPU; "
                "sqlite3 floor "
                f"{single['floor_ops_per_s']:,.0f}/s, {single['floor_us_per_op']:.0f} µs); "
                f"target > {SINGLE_TARGET_OPS:,.0f}/s: "
                f"{verdict(single['ops_per_s'] > SINGLE_TARGET_OPS)}"
            )
    for name in ("contended_1", "contended_10"):
        res = figures.get(name)
        if res is None:
            continue
        if "error" in res:
            lines.append(f"{name}: ERROR {res['error']}")
            continue
        lines.append(
            f"{res['processes']} processes on a limit of {res['limit']}: "
            f"{res['ops_per_s']:,.0f} acquire+release/s in total "
            f"(per process {res['per_process_ops']} in {res['seconds']:.1f} s)"
        )
    for name, label in (("handoff_threads", "threads"), ("handoff_processes", "processes")):
        res = figures.get(name)
        if res is None:
            continue
        if "error" in res:
            lines.append(f"handoff between {label}: ERROR {res['error']}")
            continue
        base = res["baseline"]
        lines.append(
            f"release -> next start, between {label}: median {res['median_ms']:.2f} ms, "
            f"p95 {res['p95_ms']:.2f} ms, max {res['max_ms']:.2f} ms over {res['handoffs']} "
            f"handoffs (plain lock: median {base['median_ms']:.3f} ms); target < "
            f"{HANDOFF_TARGET_MS:g} ms: {verdict(res['p95_ms'] < HANDOFF_TARGET_MS)}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=3000, help="sequential acquire+release")
    parser.add_argument("--seconds", type=float, default=2.0, help="contended run time")
    parser.add_argument("--processes", type=int, default=4, help="contending processes")
    parser.add_argument("--handoffs", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=120.0, help="per measurement")
    parser.add_argument("--only", choices=MEASUREMENTS, action="append")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--measure", choices=MEASUREMENTS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args)))
        return 0
    figures = run(args.ops, args.seconds, args.processes, args.handoffs, args.timeout, args.only)
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
