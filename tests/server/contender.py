"""A process running a flow whose tasks contend for one concurrency limit, counting them.

Usage: contender.py COUNTER_FILE LIMIT_NAME tags|context. Each task holds the limit (through
its tag, or through `concurrency()` in its body) while it counts itself in COUNTER_FILE,
which holds [in use now, most ever in use] and is changed under an exclusive file lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys

from anabranch import flow, task
from anabranch.concurrency.sync import concurrency


def count(path: str, step: int) -> None:
    with open(path, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        now, peak = json.loads(f.read())
        now += step
        f.seek(0)
        f.truncate()
        f.write(json.dumps([now, max(peak, now)]))


def main(counter: str, limit_name: str, mode: str) -> None:
    def critical_section(i: int) -> None:
        count(counter, +1)
        try:
            for _ in range(200_000):  # hold the slots a while, busy rather than asleep
                os.getpid()
        finally:
            count(counter, -1)

    tagged = task(name="tagged", tags=[limit_name])(critical_section)

    @task
    def guarded(i: int) -> None:
        with concurrency(limit_name, timeout_seconds=120):
            critical_section(i)

    @flow(name="contender")
    def contender(n: int) -> None:
        work = tagged if mode == "tags" else guarded
        work.map(range(n)).result()

    contender(12)
    print("done")


if __name__ == "__main__":
    main(*sys.argv[1:4])
