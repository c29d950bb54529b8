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
from anabranch.schemas.summaries import ChildSummary, FlowSummary, RunChange


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
        root_only: bool = False,
        deployment_id: uuid.UUID | None = None,
        work_pool_name: str | None = None,
        name_contains: str | None = None,
        failed_first: bool = False,
        id_prefix: str | None = None,
    ) -> list[FlowRun]:
        """Flow runs, newest first (failed and crashed first with ``failed_first``),
        filtered by state type, state name (any case), flow name, parent (or only runs
        without one, ``root_only``), deployment, work pool, name (any case), the start of
        the id (``id_prefix``, hex digits), tags (runs having all of them) and start or
        creation time (bounds included; timezone-aware datetimes, else ValueError; a run
        not yet started has no start)."""

    @operation("GET", "/task_runs", implementation="runs:read_task_runs")
    def read_task_runs(
        self,
        *,
        flow_run_id: uuid.UUID | None = None,
        limit: int | None = None,
        offset: int = 0,
        state_types: Sequence[StateType] | None = None,
        failed_first: bool = False,
    ) -> list[TaskRun]:
        """Task runs of a flow run (all if None), oldest first (failed and crashed first
        with ``failed_first``), optionally of some state types only."""

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
        offset: int = 0,
        min_level: int = 0,
        text: str | None = None,
        include_subflows: bool = False,
        newest_first: bool = False,
    ) -> list[LogRecord]:
        """Log lines, oldest first (newest first with ``newest_first``), of a flow run
        (including its task runs, and with ``include_subflows`` every run below it) or one
        task run; at ``min_level`` or above (a ``logging`` level), containing ``text`` in
        any case."""

    @operation("GET", "/flow_run_summaries", implementation="summaries:summarize_children")
    def summarize_children(
        self, *, flow_run_ids: Sequence[uuid.UUID], by_flow: bool = False
    ) -> list[ChildSummary]:
        """Each flow run's subflow runs and task runs counted by state type (and its subflow
        runs by flow name with ``by_flow``), in the order of ``flow_run_ids``."""

    @operation("GET", "/flows", implementation="summaries:read_flows")
    def read_flows(self, *, recent: int = 10) -> list[FlowSummary]:
        """Every flow that has runs, by name, with its run count and newest runs."""

    @operation("GET", "/run_changes", implementation="summaries:read_run_changes")
    def read_run_changes(self, *, since: datetime) -> list[RunChange]:
        """Flow runs written after ``since`` (timezone-aware), directly or through one of
        their task runs, newest change first; at most 500 (when 500 come back, more may
        have changed)."""
