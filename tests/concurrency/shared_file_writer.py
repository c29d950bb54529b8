"""One process of the shared-file test: a parent flow whose subflows each append one line to
a shared file, inside ``concurrency("shared-file")``, in several writes.

Usage: python shared_file_writer.py PATH PREFIX COUNT BODY
Prints READY once imported and waits for a line on stdin, so the test can start every
process's flow at the same moment.
"""

from __future__ import annotations

import sys
import time

from anabranch import flow, unmapped
from anabranch.concurrency.sync import concurrency
from anabranch.task_runners import ThreadPoolTaskRunner

CHUNK = 64


@flow
def append_line(path: str, line_id: str, body: str) -> None:
    line = f"{line_id}:{body}\n"
    with concurrency("shared-file"), open(path, "a") as shared:
        for start in range(0, len(line), CHUNK):
            shared.write(line[start : start + CHUNK])
            shared.flush()
            time.sleep(0.0005)  # leave room for another writer to interleave


@flow(task_runner=ThreadPoolTaskRunner(max_workers=10))
def writer(path: str, prefix: str, count: int, body: str) -> None:
    line_ids = [f"{prefix}-{i}" for i in range(count)]
    append_line.map(unmapped(path), line_ids, unmapped(body)).result()


if __name__ == "__main__":
    print("READY", flush=True)
    sys.stdin.readline()
    writer(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
