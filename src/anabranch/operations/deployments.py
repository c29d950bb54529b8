# mypy: disable-error-code="empty-body"
"""Deployments, the runs made from them, and stopping runs from outside (cancellation, a
worker's report that a run's process exited)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import Field

from anabranch.exceptions import (
    InvalidDeployment,
    InvalidParameters,
    InvalidStateTransition,
    ObjectNotFound,
)
from anabranch.operations._declare import (
    ends_the_run,
    ends_the_runs_returned,
    operation,
    wakes_workers,
)
from anabranch.schemas import FlowRun
from anabranch.schemas.deployments import Deployment, DeploymentRunRequest


def _has_idempotency_key(arguments: dict[str, Any]) -> bool:
    """Safe to resend only with an idempotency key (run_deployment always sends one):
    without one, a request whose answer was lost would make a second run."""
    request = arguments["request"]
    return request is not None and request.idempotency_key is not None


ProcessId = Annotated[int, Field(ge=0, le=2**31 - 1)]
ExitCode = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
# A long poll is held by the server this long at most, so no proxy drops a quiet connection.
MAX_WAIT_SECONDS = 30.0
WaitSeconds = Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS)]


class DeploymentOperations:
    """Deployments and their runs."""

    @operation("POST", "/deployments", implementation="deployments:save_deployment",
               body="deployment", errors=[InvalidDeployment, ObjectNotFound])
    def save_deployment(self, deployment: Deployment) -> Deployment:
        """Create the deployment, or replace the one with the same flow and name (its id and
        runs stay); its work pool must exist."""

    @operation("GET", "/deployments/{deployment_id}",
               implementation="deployments:read_deployment", errors=[ObjectNotFound])
    def read_deployment(self, deployment_id: uuid.UUID) -> Deployment:
        """One deployment; ObjectNotFound if there is none."""

    @operation("GET", "/deployments/name/{name:path}",
               implementation="deployments:read_deployment_by_name", errors=[ObjectNotFound])
    def read_deployment_by_name(self, name: str) -> Deployment:
        """The deployment ``"flow-name/deployment-name"``; ObjectNotFound if there is none."""

    @operation("GET", "/deployments", implementation="deployments:read_deployments")
    def read_deployments(
        self, *, flow_name: str | None = None, work_pool_name: str | None = None
    ) -> list[Deployment]:
        """Deployments by flow name and name."""

    @operation("PATCH", "/deployments/{deployment_id}",
               implementation="deployments:set_deployment_paused", errors=[ObjectNotFound],
               wakes=wakes_workers)
    def set_deployment_paused(self, deployment_id: uuid.UUID, paused: bool) -> Deployment:
        """Pause or resume a deployment's schedules."""

    @operation("DELETE", "/deployments/{deployment_id}",
               implementation="deployments:delete_deployment", errors=[ObjectNotFound])
    def delete_deployment(self, deployment_id: uuid.UUID) -> None:
        """Delete a deployment; its runs that have not started are cancelled."""

    @operation("POST", "/deployments/{deployment_id}/create_flow_run",
               implementation="deployment_runs:create_deployment_run", body="request",
               errors=[InvalidParameters, ObjectNotFound], wakes=wakes_workers,
               resend=_has_idempotency_key)
    def create_flow_run_from_deployment(
        self, deployment_id: uuid.UUID, request: DeploymentRunRequest | None = None
    ) -> FlowRun:
        """A new Scheduled run of the deployment (or the one with the same idempotency
        key); InvalidParameters naming the parameter if the flow does not accept them."""

    @operation("POST", "/flow_runs/{flow_run_id}/cancel",
               implementation="run_control:cancel_flow_run",
               errors=[ObjectNotFound, InvalidStateTransition], wakes=ends_the_runs_returned)
    def cancel_flow_run(
        self, flow_run_id: uuid.UUID, *, descendants: bool = False
    ) -> list[uuid.UUID]:
        """Cancel a flow run and its unfinished descendants; the ids cancelled or now
        Cancelling. A finished run raises unless ``descendants`` is True."""

    @operation("POST", "/flow_runs/{flow_run_id}/claim",
               implementation="run_control:claim_flow_run")
    def claim_flow_run(
        self,
        flow_run_id: uuid.UUID,
        *,
        process_id: ProcessId,
        worker_name: str | None = None,
    ) -> bool:
        """Claim a worker's run for the process about to carry it out; False when it is no
        longer Pending, already claimed, or no longer ``worker_name``'s (do not run it)."""

    @operation("POST", "/flow_runs/{flow_run_id}/process_exit",
               implementation="run_control:report_process_exit", wakes=ends_the_run)
    def report_process_exit(
        self, flow_run_id: uuid.UUID, exit_code: ExitCode, *, worker_name: str | None = None
    ) -> None:
        """A worker's report that the process running a flow run exited; with
        ``worker_name``, ignored once the run has been handed to another worker."""

    # A long poll: the embedded client and the server each wait in their own way.
    @operation("GET", "/flow_runs/{flow_run_id}/wait", implementation=None,
               errors=[ObjectNotFound], holds_for="timeout")
    def wait_for_flow_run(self, flow_run_id: uuid.UUID, timeout: WaitSeconds) -> FlowRun:
        """The flow run once it is final, or as it is when ``timeout`` seconds (at most
        30) have passed."""
