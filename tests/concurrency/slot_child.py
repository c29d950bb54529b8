"""A separate process that takes concurrency slots, started by the concurrency tests.

Usage: python slot_child.py MODE NAME[,NAME...] [options]

Modes:
  hold    ``with concurrency(names, occupy)``; prints HOLDING once inside, then (``--until``)
          waits for a line on stdin (``stdin``), leaves at once (``exit``) or blocks forever
          (``forever``, for signals); prints RELEASED after the block.
  tagged  a flow submits a task tagged with the first name; the task prints HOLDING and blocks
          forever (for signals).
  loop    prints READY and waits for a line on stdin, then runs ``--times`` blocks of
          ``concurrency(names)`` in a row; prints one JSON line with the [start, end]
          wall-clock times recorded inside each block, then DONE.

The store is the one ANABRANCH_HOME points at; the lease time comes from
ANABRANCH_CONCURRENCY_LEASE_SECONDS as usual.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from anabranch import flow, task
from anabranch.concurrency.sync import concurrency
from anabranch.task_runners import ThreadPoolTaskRunner


def say(word: str) -> None:
    print(word, flush=True)


def hold(names: list[str], occupy: int, until: str) -> None:
    with concurrency(names, occupy=occupy):
        say("HOLDING")
        if until == "stdin":
            sys.stdin.readline()
        elif until == "forever":
            threading.Event().wait()
    say("RELEASED")


def tagged(tag: str) -> None:
    @task(tags=[tag])
    def blocked() -> None:
        say("HOLDING")
        threading.Event().wait()

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def holder() -> None:
        blocked.submit().result()

    holder()


def loop(names: list[str], times: int) -> None:
    say("READY")
    sys.stdin.readline()
    intervals = []
    for _ in range(times):
        with concurrency(names):
            start = time.time()
            time.sleep(0.001)  # a body long enough that overlapping holds would show
            intervals.append((start, time.time()))
    say(json.dumps(intervals))
    say("DONE")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["hold", "tagged", "loop"])
    parser.add_argument("names")
    parser.add_argument("--occupy", type=int, default=1)
    parser.add_argument("--until", choices=["stdin", "exit", "forever"], default="stdin")
    parser.add_argument("--times", type=int, default=100)
    args = parser.parse_args()
    names = args.names.split(",")
    if args.mode == "hold":
        hold(names, args.occupy, args.until)
    elif args.mode == "tagged":
        tagged(names[0])
    else:
        loop(names, args.times)


if __name__ == "__main__":
    main()
