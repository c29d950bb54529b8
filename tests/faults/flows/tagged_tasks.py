"""TASKS tasks tagged TAG (a concurrency limit the test made) on a ThreadPoolTaskRunner.

Prints ``EXPECT {...}`` (the runs it will create) before any work, ``SUBMITTED`` once every
task is submitted, ``READY k`` when the k-th ``--ready-after`` count of finished task bodies
is reached, and ``DONE {...}`` (task states and seconds taken) after the flow returned. Task
runs that fail do not fail the flow: the test reads their states from the database.
"""

import argparse
import json
import threading
import time

from anabranch import flow, task
from anabranch.futures import wait
from anabranch.task_runners import ThreadPoolTaskRunner

parser = argparse.ArgumentParser()
parser.add_argument("--tasks", type=int, required=True)
parser.add_argument("--tag", required=True)
parser.add_argument("--workers", type=int, default=16)
parser.add_argument("--seconds", type=float, default=0.0, help="each task sleeps this long")
parser.add_argument("--ready-after", type=int, action="append", default=[])
args = parser.parse_args()

_lock = threading.Lock()
_finished = 0


def _finished_one() -> None:
    global _finished
    with _lock:
        _finished += 1
        count = _finished
    if count in args.ready_after:
        print(f"READY {args.ready_after.index(count) + 1}", flush=True)


@task(tags=[args.tag])
def work(i: int) -> int:
    if args.seconds:
        time.sleep(args.seconds)
    _finished_one()
    return i


@flow(task_runner=ThreadPoolTaskRunner(max_workers=args.workers))
def tagged_tasks(n: int) -> dict:
    futures = work.map(range(n))
    print("SUBMITTED", flush=True)
    wait(futures)
    states: dict[str, int] = {}
    for future in futures:
        states[future.state.type.value] = states.get(future.state.type.value, 0) + 1
    return states


if __name__ == "__main__":
    print("EXPECT " + json.dumps({"flow_runs": 1, "task_runs": args.tasks}), flush=True)
    started = time.monotonic()
    states = tagged_tasks(args.tasks)
    print("DONE " + json.dumps({"states": states, "seconds": time.monotonic() - started}),
          flush=True)
