"""Counts and digests of runs for pages that must stay fast with 10,000 children and
100,000 runs: each is one grouped query over indexed columns, never a load of every run."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch import _clock
from anabranch.database.models import flow_run, task_run
from anabranch.schemas.states import StateType
from anabranch.schemas.summaries import (
    ChildSummary,
    FlowSummary,
    RunChange,
    RunMark,
    StateCounts,
)

# How many changed runs one look reports at most; a page seeing that many looks at all.
MAX_CHANGES = 500


def summarize_children(
    conn: Connection, *, flow_run_ids: Sequence[uuid.UUID], by_flow: bool = False
) -> list[ChildSummary]:
    """For each flow run, in the order given, its subflow runs and task runs by state type
    (and its subflow runs by flow name with ``by_flow``)."""
    summaries = {run_id: ChildSummary(flow_run_id=run_id) for run_id in flow_run_ids}
    if not summaries:
        return []
    ids = list(summaries)
    parent = flow_run.c.parent_flow_run_id
    subflows = sa.select(parent, flow_run.c.flow_name, flow_run.c.state_type, sa.func.count())
    subflows = subflows.where(parent.in_(ids)).group_by(
        parent, flow_run.c.flow_name, flow_run.c.state_type
    )
    for parent_id, flow_name, state_type, number in conn.execute(subflows):
        summary = summaries[parent_id]
        summary.subflows.add(_state_type(state_type), number)
        if by_flow:
            counts = summary.subflows_by_flow.setdefault(flow_name, StateCounts())
            counts.add(_state_type(state_type), number)
    owner = task_run.c.flow_run_id
    tasks = sa.select(owner, task_run.c.state_type, sa.func.count())
    tasks = tasks.where(owner.in_(ids)).group_by(owner, task_run.c.state_type)
    for flow_run_id, state_type, number in conn.execute(tasks):
        summaries[flow_run_id].task_runs.add(_state_type(state_type), number)
    return list(summaries.values())


def read_flows(conn: Connection, *, recent: int = 10) -> list[FlowSummary]:
    """Every flow that has runs, by name, with its run count and its ``recent`` newest runs."""
    counts = conn.execute(
        sa.select(flow_run.c.flow_name, sa.func.count())
        .group_by(flow_run.c.flow_name)
        .order_by(flow_run.c.flow_name)
    ).all()
    if recent <= 0:
        return [FlowSummary(name=name, run_count=number, recent=[]) for name, number in counts]
    newest = (
        sa.select(
            flow_run.c.id,
            flow_run.c.name,
            flow_run.c.flow_name,
            flow_run.c.state_type,
            flow_run.c.state_name,
            flow_run.c.created,
            sa.func.row_number()
            .over(
                partition_by=flow_run.c.flow_name,
                order_by=(flow_run.c.created.desc(), flow_run.c.id.desc()),
            )
            .label("position"),
        )
    ).subquery()
    marks: dict[str, list[RunMark]] = {}
    rows = conn.execute(
        sa.select(newest).where(newest.c.position <= recent).order_by(newest.c.position)
    ).mappings()
    for row in rows:
        marks.setdefault(row["flow_name"], []).append(
            RunMark(
                id=row["id"],
                name=row["name"],
                state_type=_state_type(row["state_type"]),
                state_name=row["state_name"],
                created=row["created"],
            )
        )
    return [
        FlowSummary(name=name, run_count=number, recent=marks.get(name, []))
        for name, number in counts
    ]


def read_run_changes(conn: Connection, *, since: datetime) -> list[RunChange]:
    """Flow runs written after ``since`` (timezone-aware), themselves or through one of their
    task runs, newest change first, at most MAX_CHANGES (when that many come back, more may
    have changed)."""
    _clock.require_aware(since, "since")
    own = sa.select(
        flow_run.c.id.label("flow_run_id"),
        flow_run.c.parent_flow_run_id,
        flow_run.c.updated,
    ).where(flow_run.c.updated > since)
    by_task = (
        sa.select(
            task_run.c.flow_run_id,
            flow_run.c.parent_flow_run_id,
            sa.func.max(task_run.c.updated).label("updated"),
        )
        .join(flow_run, flow_run.c.id == task_run.c.flow_run_id)
        .where(task_run.c.updated > since)
        .group_by(task_run.c.flow_run_id, flow_run.c.parent_flow_run_id)
    )
    changes: dict[uuid.UUID, RunChange] = {}
    for query in (own, by_task):
        # Ties broken by id: the same newest changes come back however often one looks.
        newest = query.order_by(sa.text("updated DESC, flow_run_id DESC")).limit(MAX_CHANGES)
        for row in conn.execute(newest).mappings():
            change = RunChange(**row)
            known = changes.get(change.flow_run_id)
            if known is None or known.updated < change.updated:
                changes[change.flow_run_id] = change
    ordered = sorted(changes.values(), key=lambda c: (c.updated, c.flow_run_id), reverse=True)
    return ordered[:MAX_CHANGES]


def _state_type(value: str | None) -> StateType | None:
    return None if value is None else StateType(value)
