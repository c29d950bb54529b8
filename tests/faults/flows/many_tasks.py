"""TASKS short tasks, each logging one line, on ThreadPoolTaskRunner(16).

Prints ``EXPECT {...}`` (runs and ``faults-line`` log lines it will create) before any work,
``READY 1`` once half the task bodies have finished, ``DONE {...}`` after the flow returned.
"""

import argparse
import json
import threading
import time

from anabranch import flow, get_run_logger, task
from anabranch.task_runners import ThreadPoolTaskRunner

parser = argparse.ArgumentParser()
parser.add_argument("--tasks", type=int, required=True)
parser.add_argument("--seconds", type=float, default=0.008)
args = parser.parse_args()

_lock = threading.Lock()
_finished = 0


@task
def work(i: int) -> int:
    global _finished
    time.sleep(args.seconds)
    get_run_logger().info("faults-line task %d", i)
    with _lock:
        _finished += 1
        if _finished == args.tasks // 2:
            print("READY 1", flush=True)
    return i


@flow(task_runner=ThreadPoolTaskRunner(max_workers=16))
def many_tasks(n: int) -> int:
    return sum(work.map(range(n)).result())


if __name__ == "__main__":
    expect = {"flow_runs": 1, "task_runs": args.tasks, "log_lines": args.tasks}
    print("EXPECT " + json.dumps(expect), flush=True)
    started = time.monotonic()
    total = many_tasks(args.tasks)
    assert total == sum(range(args.tasks)), total
    print("DONE " + json.dumps({"seconds": time.monotonic() - started}), flush=True)
