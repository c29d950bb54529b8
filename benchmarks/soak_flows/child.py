"""The flow the soak deploys to its work pool: a child run by a worker, in a process of its
own, for the deployment driver's ``run_deployment`` calls. It takes about two seconds, so
a worker killed at a random moment often has children running."""

from __future__ import annotations

import time

from anabranch import flow, task

STEP_SECONDS = 2.0


@task(name="soak-child-step")
def step(i: int) -> int:
    time.sleep(STEP_SECONDS)
    return i


@flow(name="soak-child")
def soak_child(i: int = 0) -> int:
    return step(i)
