"""A flow of TASKS tasks whose records carry NUL characters: one log line and one task's
parameter hold "\\x00" between plain text; everything else is plain.

Prints ``EXPECT {...}`` before any work and ``DONE {...}`` after the flow returned.
"""

import argparse
import json

from anabranch import flow, get_run_logger, task
from anabranch.task_runners import ThreadPoolTaskRunner

parser = argparse.ArgumentParser()
parser.add_argument("--tasks", type=int, default=200)
args = parser.parse_args()


@task
def echo(text: str) -> int:
    return len(text)


@flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
def nul_text(n: int) -> int:
    logger = get_run_logger()
    logger.info("faults-line plain before")
    logger.info("faults-line log-before\x00log-after")
    texts = [f"plain {i}" for i in range(n)]
    texts[n // 2] = "param-before\x00param-after"
    total = sum(echo.map(texts).result())
    logger.info("faults-line plain after")
    return total


if __name__ == "__main__":
    print("EXPECT " + json.dumps({"flow_runs": 1, "task_runs": args.tasks}), flush=True)
    total = nul_text(args.tasks)
    print("DONE " + json.dumps({"total": total}), flush=True)
