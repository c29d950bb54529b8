# mypy: disable-error-code="empty-body"
"""Flow runs, task runs, their states and logs; and record batches, which write them all."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from anabranch.exceptions import InvalidStateTransition, ObjectNotFound
from anabranch.operations._declare import operation
from anabranch.schemas import FlowRun, LogRecord, RecordBatch, StateRecord, StateType, TaskRun


def _ends_the_final_runs(
    arguments: dict[str, Any], result: Any
) -> tuple[Iterable[uuid.UUID], bool]:
    """The batch's flow runs that reached a final state: their waiters look again, and so
    do workers (a run that ended frees room in its pool)."""
    batch: RecordBatch = arguments["batch"]
    ended = [run.id for run in batch.flow_runs if run.state is not None and run.state.is_final()]
    return ended, bool(ended)


class RunOperations:
    """Writing and reading runs."""

    @operation(
        "POST", "/batches", implementation="runs:write_batch", body="batch",
        errors=[InvalidStateTransition], wakes=_ends_the_final_runs,
    )
    def write_batch(self, batch: RecordBatch) -> None:
        """Apply run snapshots, state transitions and log lines; idempotent.

        Raises InvalidStateTransition, after storing the rest of the batch, when a snapshot
        breaks the state rules (a final run moving on); that run keeps its stored state."""

    @operation("GET", "/flow_runs/{flow_run_id}", implementation="runs:read_flow_run",
               errors=[ObjectNotFound])
    def read_flow_run(self, flow_run_id: uuid.UUID) -> FlowRun:
        """One flow run; raises ObjectNotFound naming the id if there is none."""

    @operation("GET", "/flow_runs", implementation="runs:read_flow_runs")
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

    @operation("GET", "/task_runs", implementation="runs:read_task_runs")
    def read_task_runs(self, *, flow_run_id: uuid.UUID | None = None) -> list[TaskRun]:
        """Task runs of a flow run (all if None), oldest first."""

    @operation("GET", "/task_runs/{task_run_id}", implementation="runs:read_task_run",
               errors=[ObjectNotFound])
    def read_task_run(self, task_run_id: uuid.UUID) -> TaskRun:
        """One task run; raises ObjectNotFound naming the id if there is none."""

    @operation("GET", "/runs/{run_id}/states", implementation="runs:read_states")
    def read_states(self, run_id: uuid.UUID) -> list[StateRecord]:
        """The state history of a flow or task run, oldest first."""

    @operation("GET", "/logs", implementation="runs:read_logs")
    def read_logs(
        self,
        *,
        flow_run_id: uuid.UUID | None = None,
        task_run_id: uuid.UUID | None = None,
        limit: int | None = None,
    ) -> list[LogRecord]:
        """Log lines, oldest first, of a flow run (including its task runs) or one task run."""
