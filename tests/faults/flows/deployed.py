"""Flows for the dead-worker test: ``sleeper`` is deployed and run by a worker (and killed
with it); ``waiting_parent`` (run as a script) waits for it in run_deployment.

The parent prints ``READY`` just before it calls run_deployment.
"""

import sys
import time

from anabranch import flow
from anabranch.deployments import run_deployment


@flow
def sleeper() -> None:
    time.sleep(600)


@flow
def waiting_parent(deployment: str) -> None:
    print("READY", flush=True)
    run_deployment(name=deployment)


if __name__ == "__main__":
    waiting_parent(sys.argv[1])
