"""Deployments, the runs made from them, and stopping runs from outside (cancellation, a
worker's report that a run's process exited)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from anabranch.schemas import FlowRun
from anabranch.schemas.deployments import (
    Deployment,
    DeploymentRunRequest,
    WorkerPoll,
    WorkerPollAnswer,
)
from anabranch.server.dependencies import Feed, Store
from anabranch.server.waiting import FALLBACK_LOOK_SECONDS, MAX_WAIT_SECONDS, long_poll_work

router = APIRouter(tags=["deployments"])

_404: dict[int | str, dict[str, Any]] = {404: {"description": "No such deployment."}}


class DeploymentUpdate(BaseModel):
    paused: bool


class Cancellation(BaseModel):
    descendants: bool = False


class Cancelled(BaseModel):
    changed: list[uuid.UUID]


class Claim(BaseModel):
    process_id: int = Field(ge=0, le=2**31 - 1)
    worker_name: str | None = None


class Claimed(BaseModel):
    claimed: bool


class ProcessExit(BaseModel):
    exit_code: int = Field(ge=-(2**31), le=2**31 - 1)
    worker_name: str | None = None


@router.post("/deployments")
def save_deployment(body: Deployment, store: Store) -> Deployment:
    """Create a deployment, or replace the one with the same flow name and name."""
    return store.save_deployment(body)


@router.get("/deployments")
def read_deployments(
    store: Store, flow_name: str | None = None, work_pool_name: str | None = None
) -> list[Deployment]:
    return store.read_deployments(flow_name=flow_name, work_pool_name=work_pool_name)


@router.get("/deployments/name/{flow_name}/{name}", responses=_404)
def read_deployment_by_name(flow_name: str, name: str, store: Store) -> Deployment:
    return store.read_deployment_by_name(f"{flow_name}/{name}")


@router.post("/deployments/poll")
async def poll_served_deployments(body: WorkerPoll, store: Store, feed: Feed) -> WorkerPollAnswer:
    """A ``serve`` process asking for due runs of its own deployments (a long poll)."""
    return await long_poll_work(store, feed, None, body)


@router.get("/deployments/{deployment_id}", responses=_404)
def read_deployment(deployment_id: uuid.UUID, store: Store) -> Deployment:
    return store.read_deployment(deployment_id)


@router.patch("/deployments/{deployment_id}", responses=_404)
def update_deployment(
    deployment_id: uuid.UUID, body: DeploymentUpdate, store: Store
) -> Deployment:
    return store.set_deployment_paused(deployment_id, body.paused)


@router.delete(
    "/deployments/{deployment_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_404
)
def delete_deployment(deployment_id: uuid.UUID, store: Store) -> None:
    store.delete_deployment(deployment_id)


@router.post("/deployments/{deployment_id}/create_flow_run", responses=_404)
def create_flow_run_from_deployment(
    deployment_id: uuid.UUID, body: DeploymentRunRequest, store: Store
) -> FlowRun:
    """A new Scheduled run; 400 naming the parameter the flow does not accept."""
    return store.create_flow_run_from_deployment(deployment_id, body)


@router.post("/flow_runs/{flow_run_id}/cancel", responses={404: {"description": "No run."}})
def cancel_flow_run(flow_run_id: uuid.UUID, body: Cancellation, store: Store) -> Cancelled:
    """Cancel a run and its unfinished descendants; 400 if it ended, unless ``descendants``."""
    return Cancelled(changed=store.cancel_flow_run(flow_run_id, descendants=body.descendants))


@router.post("/flow_runs/{flow_run_id}/claim")
def claim_flow_run(flow_run_id: uuid.UUID, body: Claim, store: Store) -> Claimed:
    """A worker's child claims the run it is about to carry out; false: do not run it."""
    return Claimed(
        claimed=store.claim_flow_run(
            flow_run_id, process_id=body.process_id, worker_name=body.worker_name
        )
    )


@router.post(
    "/flow_runs/{flow_run_id}/process_exit", status_code=status.HTTP_204_NO_CONTENT
)
def report_process_exit(flow_run_id: uuid.UUID, body: ProcessExit, store: Store) -> None:
    store.report_process_exit(flow_run_id, body.exit_code, worker_name=body.worker_name)


@router.get("/flow_runs/{flow_run_id}/wait", responses={404: {"description": "No run."}})
async def wait_for_flow_run(
    flow_run_id: uuid.UUID,
    store: Store,
    feed: Feed,
    timeout: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 10.0,
) -> FlowRun:
    """The run once it is final, or as it is after ``timeout`` seconds (a long poll)."""
    deadline = anyio.current_time() + timeout
    while True:
        run = await run_in_threadpool(store.read_flow_run, flow_run_id)
        remaining = deadline - anyio.current_time()
        if (run.state is not None and run.state.is_final()) or remaining <= 0:
            return run
        await feed.ended(flow_run_id, min(remaining, FALLBACK_LOOK_SECONDS))
