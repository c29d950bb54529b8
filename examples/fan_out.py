"""The `make demo` example: a parent flow fans out 20 child flows, at most 10 at a time;
each child calls a nested grandchild flow. Afterwards the recorded run tree is printed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from anabranch import flow, get_run_context, get_run_logger, task
from anabranch.task_runners import ThreadPoolTaskRunner


@task
def measure(region: int) -> float:
    time.sleep(0.05)
    return region * 1.5


@flow
def grandchild(region: int) -> float:
    return measure(region)


@flow
def child(region: int) -> float:
    value = grandchild(region)
    get_run_logger().info("region %d measured %.1f", region, value)
    return value


@flow(task_runner=ThreadPoolTaskRunner(max_workers=10), log_prints=True)
def parent(regions: int = 20) -> tuple:
    total = sum(child.map(range(regions)).result())
    print(f"total over {regions} regions: {total}")
    return get_run_context().flow_run.id, total


if __name__ == "__main__":
    run_id, _ = parent()
    cli = Path(sys.executable).with_name("anabranch")
    subprocess.run([str(cli), "flow-run", "inspect", str(run_id)], check=True)
    commands = [
        (f".venv/bin/anabranch flow-run logs {run_id}", "this run's log lines"),
        (".venv/bin/anabranch flow-run ls", "every run, newest first"),
        (".venv/bin/anabranch server start", "then http://127.0.0.1:4200/ shows them in the UI"),
    ]
    width = max(len(command) for command, _ in commands)
    print("\nWhat to try next:")
    for command, what in commands:
        print(f"  {command.ljust(width)}  # {what}")
