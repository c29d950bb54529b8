"""One task tagged TAG that holds its slot until the test says go (a file appears), then an
untagged task, on a runner of ONE worker: if giving the slot back failed in a way that took
the worker down, the second task would never run.

Prints ``HOLDING`` once the tagged task runs, ``DONE {...}`` with both states at the end.
"""

import argparse
import json
import time
from pathlib import Path

from anabranch import flow, task
from anabranch.task_runners import ThreadPoolTaskRunner

parser = argparse.ArgumentParser()
parser.add_argument("--tag", required=True)
parser.add_argument("--go", required=True, help="the task holds its slot until this exists")
args = parser.parse_args()


@task(tags=[args.tag])
def holds_the_slot() -> str:
    print("HOLDING", flush=True)
    deadline = time.monotonic() + 120
    while not Path(args.go).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return "held"


@task
def plain() -> int:
    return 42


@flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
def slot_then_plain() -> dict:
    first = holds_the_slot.submit()
    first.wait()
    second = plain.submit()
    second.wait(timeout=60)
    return {"first": first.state.type.value, "second": second.state.type.value}


if __name__ == "__main__":
    print("DONE " + json.dumps(slot_then_plain()), flush=True)
