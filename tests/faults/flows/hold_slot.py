"""A flow whose task takes a slot of TAG and then sleeps: the test SIGKILLs this process
while the flow run is Running and the slot is held.

Prints ``READY {"flow_run_id": ..., "task_run_id": ...}`` once the task holds its slot.
"""

import argparse
import json
import time

from anabranch import flow, task
from anabranch.context import TaskRunContext

parser = argparse.ArgumentParser()
parser.add_argument("--tag", required=True)
args = parser.parse_args()


@task(tags=[args.tag])
def hold() -> None:
    run = TaskRunContext.get().task_run
    ids = {"flow_run_id": str(run.flow_run_id), "task_run_id": str(run.id)}
    print("READY " + json.dumps(ids), flush=True)
    time.sleep(600)


@flow
def doomed() -> None:
    hold()


if __name__ == "__main__":
    doomed()
