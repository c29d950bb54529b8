"""The background writer's cost: one RecordBatch applied to a fresh SQLite store.

Usage: python benchmarks/write_batch.py [--n-tasks 1000] [--states-per-task 3] [--logs 0]
       [--repeats 20] [--json]

The batch is what the recorder hands the client for N task runs that each went
Pending -> Running -> Completed: N run snapshots (UUIDv7 ids, as the engine makes them) and
3N state transitions, plus optional log lines. Each repeat writes it to a new SQLite file
(migrated first, untimed) through ``EmbeddedClient.write_batch``: one write transaction
around ``runs.apply_batch``, commit included. The writer runs on a thread of the user's
process, so its CPU time is what competes with the user's flow for the GIL; both wall and
CPU time of that thread are reported.

The baseline replays the exact statements and driver-level rows ``apply_batch`` sent
(captured once with a ``before_cursor_execute`` hook) through plain ``sqlite3`` on a fresh
file with the same pragmas: the floor any Python writer of those rows can reach.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from anabranch import _clock
from anabranch._ids import new_id
from anabranch.client.embedded import EmbeddedClient
from anabranch.database import get_engine
from anabranch.schemas import LogRecord, RecordBatch, State, StateRecord, StateType, TaskRun

_LIFECYCLE = (StateType.PENDING, StateType.RUNNING, StateType.COMPLETED)


def build_batch(n_tasks: int, states_per_task: int, n_logs: int) -> RecordBatch:
    """N task runs of one flow run, each with its last state as the snapshot's state."""
    flow_run_id = new_id()
    start = _clock.now()
    runs: list[TaskRun] = []
    states: list[StateRecord] = []
    for i in range(n_tasks):
        run = TaskRun(
            id=new_id(),
            name=f"noop-{i}",
            task_key="workloads.noop",
            flow_run_id=flow_run_id,
            parameters={"i": i},
            run_count=1,
            created=start,
            start_time=start,
            end_time=start + timedelta(microseconds=50),
        )
        for k in range(states_per_task):
            type_ = _LIFECYCLE[min(k, len(_LIFECYCLE) - 1)]
            at = start + timedelta(microseconds=10 * k)
            run.state = State(id=new_id(), type=type_, name=type_.value.title(), timestamp=at)
            states.append(StateRecord(run_id=run.id, state=run.state))
        runs.append(run)
    logs = [
        LogRecord(
            task_run_id=runs[i % n_tasks].id,
            name="anabranch.task_runs",
            level=20,
            message=f"Finished in state Completed() #{i}",
        )
        for i in range(n_logs)
    ]
    return RecordBatch(task_runs=runs, states=states, logs=logs)


def _fresh_url(folder: Path, name: str) -> str:
    return f"sqlite:///{folder / name / 'anabranch.db'}"


def _write_once(url: str, batch: RecordBatch) -> tuple[float, float]:
    client = EmbeddedClient(url)  # migrates the fresh file: untimed
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    client.write_batch(batch)
    wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    get_engine(url).dispose()
    return wall, cpu


def _capture_statements(url: str, batch: RecordBatch) -> list[tuple[str, Any]]:
    """Apply the batch once (a warm-up) and record what reached the driver."""
    sent: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            sent.append((statement, parameters if executemany else [parameters]))

    engine = get_engine(url)
    EmbeddedClient(url)
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        EmbeddedClient(url).write_batch(batch)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
        engine.dispose()
    return sent


def _replay_with_sqlite3(url: str, sent: list[tuple[str, Any]]) -> tuple[float, float]:
    EmbeddedClient(url)  # the same schema, migrated
    get_engine(url).dispose()
    conn = sqlite3.connect(sa.make_url(url).database, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    conn.execute("BEGIN IMMEDIATE")
    for statement, parameters in sent:
        conn.executemany(statement, parameters)
    conn.execute("COMMIT")
    wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    conn.close()
    return wall, cpu


def measure(n_tasks: int, states_per_task: int, n_logs: int, repeats: int) -> dict[str, Any]:
    batch = build_batch(n_tasks, states_per_task, n_logs)
    with tempfile.TemporaryDirectory(prefix="anabranch-bench-") as tmp:
        folder = Path(tmp)
        sent = _capture_statements(_fresh_url(folder, "warm-up"), batch)
        writer = [_write_once(_fresh_url(folder, f"w{i}"), batch) for i in range(repeats)]
        floor = [_replay_with_sqlite3(_fresh_url(folder, f"b{i}"), sent) for i in range(repeats)]
    return {
        "n_tasks": n_tasks,
        "n_states": len(batch.states),
        "n_logs": n_logs,
        "repeats": repeats,
        "apply_batch_wall_s": statistics.median(w for w, _ in writer),
        "apply_batch_cpu_s": statistics.median(c for _, c in writer),
        "sqlite3_wall_s": statistics.median(w for w, _ in floor),
        "sqlite3_cpu_s": statistics.median(c for _, c in floor),
        "statements": [statement for statement, _ in sent],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-tasks", type=int, default=1000)
    parser.add_argument("--states-per-task", type=int, default=3)
    parser.add_argument("--logs", type=int, default=0, help="log lines in the batch")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print one JSON line only")
    args = parser.parse_args(argv)
    result = measure(args.n_tasks, args.states_per_task, args.logs, args.repeats)
    if args.json:
        print(json.dumps(result))
        return 0
    n = result["n_tasks"]
    print(
        f"{n} task runs + {result['n_states']} states + {result['n_logs']} logs, "
        f"median of {result['repeats']}, fresh SQLite file each:"
    )
    for label, wall, cpu in (
        ("apply_batch", result["apply_batch_wall_s"], result["apply_batch_cpu_s"]),
        ("sqlite3 replay", result["sqlite3_wall_s"], result["sqlite3_cpu_s"]),
    ):
        print(
            f"  {label:15} {wall * 1e3:6.1f} ms wall ({wall / n * 1e6:5.1f} µs/task run), "
            f"{cpu * 1e3:6.1f} ms CPU"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
