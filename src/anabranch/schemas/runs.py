"""Flow runs, task runs and log lines as they are recorded and read back."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from anabranch import _clock
from anabranch._ids import new_id
from anabranch.exceptions import MissingResult
from anabranch.schemas.states import State

# Validators are built on first validation, not at import: the engine constructs these
# objects from trusted values, and `import anabranch` must stay light.
_LAZY = ConfigDict(defer_build=True)


class _Run(BaseModel):
    model_config = _LAZY

    id: uuid.UUID = Field(default_factory=new_id)
    name: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    state: State | None = None
    run_count: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None
    created: datetime = Field(default_factory=_clock.now)

    @property
    def total_run_time(self) -> float | None:
        """Seconds from first start to end, or None while not both known."""
        if self.start_time is None or self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds()


class FlowRun(_Run):
    """One execution of a flow; a subflow run links to its parent flow run and task run."""

    flow_name: str
    flow_version: str | None = None
    parent_flow_run_id: uuid.UUID | None = None
    parent_task_run_id: uuid.UUID | None = None
    heartbeat: datetime | None = None
    # Set for runs of a deployment; the engine's snapshots never change them.
    deployment_id: uuid.UUID | None = None
    work_pool_name: str | None = None
    work_queue_name: str | None = None
    expected_start_time: datetime | None = None
    idempotency_key: str | None = None
    job_variables: dict[str, Any] | None = None
    worker_name: str | None = None
    infrastructure_pid: int | None = None

    def result(self, raise_on_failure: bool = True) -> Any:
        """The run's return value, loaded from result storage in any process; raises the
        run's error if it failed (or returns it, with ``raise_on_failure=False``)."""
        if self.state is None:
            raise MissingResult(f"Flow run {self.name!r} has no state yet.")
        return self.state.result(raise_on_failure=raise_on_failure)


class TaskRun(_Run):
    """One execution of a task inside a flow run (or alone, when called outside a flow)."""

    task_key: str
    flow_run_id: uuid.UUID | None = None
    cache_key: str | None = None


class LogRecord(BaseModel):
    """One log line of a run; its ``id`` lets a batch sent twice store the line once."""

    model_config = _LAZY

    id: uuid.UUID = Field(default_factory=new_id)
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    name: str
    level: int
    message: str
    timestamp: datetime = Field(default_factory=_clock.now)


class StateRecord(BaseModel):
    """One state transition of a run, as written to the state history."""

    model_config = _LAZY

    run_id: uuid.UUID
    state: State


class RecordBatch(BaseModel):
    """What a recorder writes in one go: run snapshots (the latest of each run), every state
    transition in order, and log lines. Applying a batch twice changes nothing."""

    model_config = _LAZY

    flow_runs: list[FlowRun] = Field(default_factory=list)
    task_runs: list[TaskRun] = Field(default_factory=list)
    states: list[StateRecord] = Field(default_factory=list)
    logs: list[LogRecord] = Field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.flow_runs or self.task_runs or self.states or self.logs)

    def __len__(self) -> int:
        return len(self.flow_runs) + len(self.task_runs) + len(self.states) + len(self.logs)

    def halves(self) -> tuple[RecordBatch, RecordBatch]:
        """The batch as two batches of about half its records each (to send a big one in
        parts, or to find the one record a store refuses)."""
        first, second = RecordBatch.model_construct(), RecordBatch.model_construct()
        room = len(self) // 2
        for field in ("flow_runs", "task_runs", "states", "logs"):
            records = getattr(self, field)
            setattr(first, field, records[:room])
            setattr(second, field, records[room:])
            room -= len(first.__dict__[field])
        return first, second
