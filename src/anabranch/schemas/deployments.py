"""Deployments, their schedules, work pools, work queues and workers."""

from __future__ import annotations

import enum
import math
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from anabranch import _clock
from anabranch._ids import new_id
from anabranch.schemas.concurrency import MAX_STORED_INT
from anabranch.schemas.runs import FlowRun

_LAZY = ConfigDict(defer_build=True)
# A served deployment is online while its `serve` process has polled within this long.
SERVE_ONLINE_SECONDS = 30.0


class Schedule(BaseModel):
    """When a deployment runs on its own: a cron expression in a timezone, or an interval
    in seconds counted from ``anchor_date``."""

    model_config = _LAZY

    cron: str | None = None
    interval: float | None = Field(default=None, gt=0)
    timezone: str = "UTC"
    anchor_date: datetime | None = None
    active: bool = True

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("a schedule has either `cron` or `interval` (seconds), not both")
        return self


class LateRunPolicy(str, enum.Enum):
    """What happens to scheduled runs that could not start on time (after an outage, say)."""

    RUN = "run"  # run every one of them, oldest first
    SKIP = "skip"  # cancel the ones later than max_lateness_seconds
    LATEST = "latest"  # run only the newest late run, cancel the rest


class WorkPool(BaseModel):
    """Where deployed runs wait for a worker; ``concurrency_limit`` caps its running runs."""

    model_config = _LAZY

    id: uuid.UUID = Field(default_factory=new_id)
    name: str
    type: str = "process"
    description: str | None = None
    concurrency_limit: int | None = Field(default=None, ge=0)
    paused: bool = False
    created: datetime = Field(default_factory=_clock.now)
    # Filled in on reads.
    active_runs: int = 0
    online_workers: int = 0


class WorkQueue(BaseModel):
    """A lane of a work pool; lower ``priority`` numbers are served first."""

    model_config = _LAZY

    id: uuid.UUID = Field(default_factory=new_id)
    name: str
    work_pool_name: str
    priority: int = Field(default=1, ge=1)
    concurrency_limit: int | None = Field(default=None, ge=0)
    paused: bool = False
    description: str | None = None
    created: datetime = Field(default_factory=_clock.now)
    active_runs: int = 0


class Deployment(BaseModel):
    """A flow entrypoint stored with everything needed to run it elsewhere.

    ``work_pool_name`` None means the deployment is served by ``flow.serve()`` rather than
    by workers. ``parameter_schema`` is the flow signature's JSON schema, so parameters are
    checked when a run is created, long before a worker imports the flow.
    """

    model_config = _LAZY

    id: uuid.UUID = Field(default_factory=new_id)
    name: str
    flow_name: str
    entrypoint: str
    description: str | None = None
    version: str | None = None
    tags: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    parameter_schema: dict[str, Any] | None = None
    work_pool_name: str | None = None
    work_queue_name: str | None = None
    job_variables: dict[str, Any] = Field(default_factory=dict)
    concurrency_limit: int | None = Field(default=None, ge=0, le=MAX_STORED_INT)
    schedules: list[Schedule] = Field(default_factory=list)
    late_run_policy: LateRunPolicy = LateRunPolicy.RUN
    max_lateness_seconds: float | None = Field(default=None, ge=0)
    paused: bool = False
    created: datetime = Field(default_factory=_clock.now)
    updated: datetime = Field(default_factory=_clock.now)
    # Filled in on reads: when a `serve` process serving it last polled.
    last_polled: datetime | None = None

    @field_validator("parameters")
    @classmethod
    def _finite_parameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        return finite_parameters(value)

    def served_offline(self, now: datetime) -> bool:
        """Served by ``flow.serve()`` (no work pool) and no such process polled lately."""
        if self.work_pool_name is not None:
            return False
        return self.last_polled is None or (now - self.last_polled).total_seconds() > (
            SERVE_ONLINE_SECONDS
        )

    @property
    def full_name(self) -> str:
        """How users address it: ``"flow-name/deployment-name"``."""
        return f"{self.flow_name}/{self.name}"


def split_full_name(full_name: str) -> tuple[str, str]:
    """``"flow-name/deployment-name"`` as (flow name, deployment name); ValueError naming the
    expected form otherwise."""
    flow_name, slash, name = full_name.partition("/")
    if not slash or not flow_name or not name:
        raise ValueError(
            f"{full_name!r} is not a deployment name; address a deployment as "
            "'flow-name/deployment-name' (see `anabranch deployment ls`)."
        )
    return flow_name, name


class DeploymentRunRequest(BaseModel):
    """Everything a caller may set on a run of a deployment; the rest comes from it."""

    model_config = _LAZY

    parameters: dict[str, Any] = Field(default_factory=dict)
    scheduled_time: datetime | None = None
    flow_run_name: str | None = None
    tags: list[str] | None = None
    idempotency_key: str | None = None
    work_queue_name: str | None = None
    job_variables: dict[str, Any] | None = None
    parent_flow_run_id: uuid.UUID | None = None
    parent_task_run_id: uuid.UUID | None = None

    @field_validator("parameters")
    @classmethod
    def _finite_parameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        return finite_parameters(value)


def first_non_finite(
    value: Any, path: tuple[Any, ...] = ()
) -> tuple[tuple[Any, ...], float] | None:
    """Where in ``value`` (a JSON-like tree) the first NaN or infinity is, and which; None
    if there is none. JSON has no such numbers: sent or stored, they would become null."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, value)
    if isinstance(value, dict):
        children: Any = value.items()
    elif isinstance(value, (list, tuple)):
        children = enumerate(value)
    else:
        return None
    for key, child in children:
        found = first_non_finite(child, (*path, key))
        if found is not None:
            return found
    return None


def finite_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """``parameters`` as they are, or ValueError naming the one holding NaN or infinity."""
    found = first_non_finite(parameters)
    if found is not None:
        path, number = found
        where = ".".join(str(part) for part in path)
        raise ValueError(
            f"parameter {where!r} is {number!r}, which JSON can not carry (it would arrive "
            "as null); send a finite number, or null or a string for a missing value"
        )
    return parameters


class Worker(BaseModel):
    """A worker process as last heard of; ``online`` while its heartbeat is fresh."""

    model_config = _LAZY

    name: str
    work_pool_name: str
    limit: int | None = None
    last_heartbeat: datetime
    online: bool = True


class WorkerPoll(BaseModel):
    """A worker asking for runs: up to ``limit`` runs that can start now, waiting at most
    ``wait`` seconds for one to appear. ``running`` lists the runs its processes still run,
    so they keep their heartbeat while the worker lives."""

    model_config = _LAZY

    worker_name: str
    work_queue_names: list[str] = Field(default_factory=list)
    deployment_ids: list[uuid.UUID] = Field(default_factory=list)
    limit: int = Field(default=1, ge=0)
    worker_limit: int | None = None
    wait: float = Field(default=0.0, ge=0, le=60)
    running: list[uuid.UUID] = Field(default_factory=list)
    # Runs it was handed but will not start (it was stopping): back to the queue.
    returned: list[uuid.UUID] = Field(default_factory=list)


class DispatchedRun(BaseModel):
    """A run handed to a worker (now Pending and counted against every limit), with its
    deployment; ``job_variables`` are the deployment's overlaid by the run's own."""

    model_config = _LAZY

    flow_run: FlowRun
    deployment: Deployment
    job_variables: dict[str, Any] = Field(default_factory=dict)


class WorkerPollAnswer(BaseModel):
    """Runs to start, and runs of this worker that were asked to cancel."""

    model_config = _LAZY

    runs: list[DispatchedRun] = Field(default_factory=list)
    cancelling: list[uuid.UUID] = Field(default_factory=list)
