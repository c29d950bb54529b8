"""The one client interface; the embedded and HTTP transports both implement it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from anabranch.schemas import (
    ConcurrencyLimit,
    FlowRun,
    LogRecord,
    RecordBatch,
    SlotGrant,
    SlotRequest,
    StateRecord,
    StateType,
    TaskRun,
)
from anabranch.schemas.deployments import (
    Deployment,
    DeploymentRunRequest,
    Worker,
    WorkerPoll,
    WorkerPollAnswer,
    WorkPool,
    WorkQueue,
)
from anabranch.schemas.unset import UNSET


class AnabranchClient(Protocol):
    """Everything the engine and the CLI ask of the store.

    Writes come in batches (``write_batch``) so the hot path never waits on a round trip;
    reads are for the CLI, tests and users' scripts.
    """

    def write_batch(self, batch: RecordBatch) -> None:
        """Apply run snapshots, state transitions and log lines; idempotent.

        Raises InvalidStateTransition, after storing the rest of the batch, when a snapshot
        breaks the state rules (a final run moving on); that run keeps its stored state."""

    def read_flow_run(self, flow_run_id: uuid.UUID) -> FlowRun:
        """One flow run; raises ObjectNotFound naming the id if there is none."""

    def read_flow_runs(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        state_types: Sequence[StateType] | None = None,
        state_names: Sequence[str] | None = None,
        flow_name: str | None = None,
        parent_flow_run_id: uuid.UUID | None = None,
        tags: Sequence[str] | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[FlowRun]:
        """Flow runs, newest first, filtered by state type, state name (any case), flow name,
        parent, tags (runs having all of them) and start or creation time (bounds included;
        timezone-aware datetimes, else ValueError; a run not yet started has no start)."""

    def read_task_runs(self, *, flow_run_id: uuid.UUID | None = None) -> list[TaskRun]:
        """Task runs of a flow run (all if None), oldest first."""

    def read_task_run(self, task_run_id: uuid.UUID) -> TaskRun:
        """One task run; raises ObjectNotFound naming the id if there is none."""

    def read_states(self, run_id: uuid.UUID) -> list[StateRecord]:
        """The state history of a flow or task run, oldest first."""

    def read_logs(
        self,
        *,
        flow_run_id: uuid.UUID | None = None,
        task_run_id: uuid.UUID | None = None,
        limit: int | None = None,
    ) -> list[LogRecord]:
        """Log lines, oldest first, of a flow run (including its task runs) or one task run."""

    def create_concurrency_limit(
        self,
        name: str,
        limit: int,
        *,
        active: bool = True,
        slot_decay_per_second: float | None = None,
    ) -> ConcurrencyLimit:
        """Create a named limit; if it exists, set its size (and decay, when given) only."""

    def read_concurrency_limit(self, name: str) -> ConcurrencyLimit:
        """The limit with its live holders; ObjectNotFound (with the create hint) if none."""

    def read_concurrency_limits(self) -> list[ConcurrencyLimit]:
        """Every limit, by name, with the slots in use."""

    def update_concurrency_limit(
        self,
        name: str,
        *,
        limit: int | None = None,
        active: bool | None = None,
        slot_decay_per_second: float | None = None,
    ) -> ConcurrencyLimit:
        """Change a limit's size, activity or slot decay."""

    def reset_concurrency_limit(self, name: str) -> ConcurrencyLimit:
        """Free every slot of a limit (holders keep running)."""

    def delete_concurrency_limit(self, name: str) -> None:
        """Delete a limit (holders keep running)."""

    def acquire_concurrency_slots(self, requests: Sequence[SlotRequest]) -> list[SlotGrant]:
        """Try each request in order, atomically each; one answer per request."""

    def release_concurrency_slots(self, lease_id: uuid.UUID) -> bool:
        """Free a lease's slots; False if it was already gone."""

    def renew_concurrency_leases(
        self, lease_ids: Sequence[uuid.UUID], seconds: float
    ) -> list[uuid.UUID]:
        """Extend leases by ``seconds``; returns the ones that were lost."""

    def withdraw_concurrency_waiter(self, waiter_id: uuid.UUID) -> None:
        """Give up a waiter's place in line."""

    def reap_concurrency_leases(self) -> int:
        """Delete expired leases and lapsed waiter tickets; returns how many leases went."""

    # Deployments and their runs

    def save_deployment(self, deployment: Deployment) -> Deployment:
        """Create the deployment, or replace the one with the same flow and name (its id and
        runs stay); its work pool must exist."""

    def read_deployment(self, deployment_id: uuid.UUID) -> Deployment:
        """One deployment; ObjectNotFound if there is none."""

    def read_deployment_by_name(self, name: str) -> Deployment:
        """The deployment ``"flow-name/deployment-name"``; ObjectNotFound if there is none."""

    def read_deployments(
        self, *, flow_name: str | None = None, work_pool_name: str | None = None
    ) -> list[Deployment]:
        """Deployments by flow name and name."""

    def set_deployment_paused(self, deployment_id: uuid.UUID, paused: bool) -> Deployment:
        """Pause or resume a deployment's schedules."""

    def delete_deployment(self, deployment_id: uuid.UUID) -> None:
        """Delete a deployment; its runs that have not started are cancelled."""

    def create_flow_run_from_deployment(
        self, deployment_id: uuid.UUID, request: DeploymentRunRequest | None = None
    ) -> FlowRun:
        """A new Scheduled run of the deployment (or the one with the same idempotency
        key); InvalidParameters naming the parameter if the flow does not accept them."""

    def cancel_flow_run(
        self, flow_run_id: uuid.UUID, *, descendants: bool = False
    ) -> list[uuid.UUID]:
        """Cancel a flow run and its unfinished descendants; the ids cancelled or now
        Cancelling. A finished run raises unless ``descendants`` is True."""

    def claim_flow_run(
        self, flow_run_id: uuid.UUID, *, process_id: int, worker_name: str | None = None
    ) -> bool:
        """Claim a worker's run for the process about to carry it out; False when it is no
        longer Pending, already claimed, or no longer ``worker_name``'s (do not run it)."""

    def report_process_exit(
        self, flow_run_id: uuid.UUID, exit_code: int, *, worker_name: str | None = None
    ) -> None:
        """A worker's report that the process running a flow run exited; with
        ``worker_name``, ignored once the run has been handed to another worker."""

    def wait_for_flow_run(self, flow_run_id: uuid.UUID, timeout: float) -> FlowRun:
        """The flow run once it is final, or as it is when ``timeout`` seconds have passed."""

    # Work pools, queues and workers

    def create_work_pool(
        self,
        name: str,
        *,
        type: str = "process",
        concurrency_limit: int | None = None,
        description: str | None = None,
    ) -> WorkPool:
        """Create a pool (with its ``default`` queue); for an existing one, set the limit
        when given."""

    def read_work_pool(self, name: str) -> WorkPool:
        """One pool with its active runs and online workers."""

    def read_work_pools(self) -> list[WorkPool]:
        """Every pool, by name."""

    def update_work_pool(
        self, name: str, *, concurrency_limit: Any = UNSET, paused: bool | None = None
    ) -> WorkPool:
        """Set or clear (None) the pool's limit; pause or resume it."""

    def delete_work_pool(self, name: str) -> None:
        """Delete a pool, its queues and its workers' records."""

    def create_work_queue(
        self,
        name: str,
        *,
        work_pool_name: str,
        priority: int | None = None,
        concurrency_limit: int | None = None,
        description: str | None = None,
    ) -> WorkQueue:
        """Create a queue in a pool; for an existing one, set what is given."""

    def read_work_queue(self, name: str, *, work_pool_name: str) -> WorkQueue:
        """One queue of a pool."""

    def read_work_queues(self, *, work_pool_name: str | None = None) -> list[WorkQueue]:
        """The queues of a pool (of every pool when None), by priority."""

    def update_work_queue(
        self,
        name: str,
        *,
        work_pool_name: str,
        concurrency_limit: Any = UNSET,
        priority: int | None = None,
        paused: bool | None = None,
    ) -> WorkQueue:
        """Set or clear (None) a queue's limit, its priority, or pause it."""

    def delete_work_queue(self, name: str, *, work_pool_name: str) -> None:
        """Delete a queue (not a pool's ``default``)."""

    def read_workers(self, work_pool_name: str) -> list[Worker]:
        """The pool's workers, online or not."""

    def poll_work(self, work_pool_name: str | None, poll: WorkerPoll) -> WorkerPollAnswer:
        """A worker's heartbeat and request for runs: waits up to ``poll.wait`` seconds for a
        due run every limit has room for, or for one of its runs to be cancelled."""

    def close(self) -> None:
        """Release connections; the client can not be used afterwards."""

    def __enter__(self) -> AnabranchClient:
        """``with get_client() as client:``, as in Prefect."""

    def __exit__(self, *exc_info: Any) -> None:
        """Leaves the client open: get_client() shares one client per store per process."""

    # Schedules

    def backfill_deployment(
        self, deployment_id: uuid.UUID, *, start: datetime, end: datetime
    ) -> list[FlowRun]:
        """The runs the deployment's schedules would have made in [start, end] (aware
        datetimes), each Scheduled at its own time; safe to repeat. ValueError (an
        AnabranchError over HTTP) for end before start, no schedule, or over 10,000 runs."""

    def schedule_runs(self) -> int:
        """One scheduler tick: make the upcoming runs of scheduled deployments and mark
        overdue runs Late; returns how many runs it made. The server does this by itself;
        a worker on the embedded store calls it now and then."""
