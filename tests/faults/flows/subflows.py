"""SUBFLOWS subflows run by Flow.map on ThreadPoolTaskRunner(16); each runs two short
tasks and logs one line.

Prints ``EXPECT {...}`` (runs and ``faults-line`` log lines it will create) before any work,
``READY 1`` once half the subflows have logged, ``DONE {...}`` after the flow returned.
"""

import argparse
import json
import threading
import time

from anabranch import flow, get_run_logger, task
from anabranch.task_runners import ThreadPoolTaskRunner

parser = argparse.ArgumentParser()
parser.add_argument("--subflows", type=int, required=True)
parser.add_argument("--seconds", type=float, default=0.008)
args = parser.parse_args()

_lock = threading.Lock()
_finished = 0


@task
def step(i: int, part: int) -> int:
    time.sleep(args.seconds)
    return i + part


@flow
def child(i: int) -> int:
    global _finished
    total = step(i, 0) + step(i, 1)
    get_run_logger().info("faults-line subflow %d", i)
    with _lock:
        _finished += 1
        if _finished == args.subflows // 2:
            print("READY 1", flush=True)
    return total


@flow(task_runner=ThreadPoolTaskRunner(max_workers=16))
def subflows(n: int) -> int:
    return sum(child.map(range(n)).result())


if __name__ == "__main__":
    expect = {
        "flow_runs": 1 + args.subflows, "task_runs": 2 * args.subflows,
        "log_lines": args.subflows,
    }
    print("EXPECT " + json.dumps(expect), flush=True)
    started = time.monotonic()
    total = subflows(args.subflows)
    assert total == sum(2 * i + 1 for i in range(args.subflows)), total
    print("DONE " + json.dumps({"seconds": time.monotonic() - started}), flush=True)
