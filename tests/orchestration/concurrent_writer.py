"""A separate process writing batches to one store, started by test_batches.py.

Usage: python concurrent_writer.py DATABASE_URL WRITER BATCHES RUNS_PER_BATCH
Prints "ready" once imported, then waits for a line on stdin before it opens the store, so
the test can release several writers at the same moment.
"""

from __future__ import annotations

import sys

from anabranch.client.embedded import EmbeddedClient
from anabranch.schemas import LogRecord, RecordBatch, State, StateRecord, StateType, TaskRun


def main(url: str, writer: str, batches: int, runs_per_batch: int) -> None:
    print("ready", flush=True)
    sys.stdin.readline()
    client = EmbeddedClient(url)
    for batch in range(batches):
        runs = [
            TaskRun(
                name=f"{writer}-{batch}-{i}",
                task_key=writer,
                state=State(type=StateType.COMPLETED, name="Completed"),
            )
            for i in range(runs_per_batch)
        ]
        client.write_batch(
            RecordBatch(
                task_runs=runs,
                states=[StateRecord(run_id=run.id, state=run.state) for run in runs],
                logs=[
                    LogRecord(task_run_id=run.id, name="test", level=20, message=run.name)
                    for run in runs
                ],
            )
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
