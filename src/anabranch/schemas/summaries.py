"""Counts and digests of runs, read by the web UI and the CLI: what a page shows at a glance
without loading thousands of runs."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from anabranch.schemas.states import StateType


class StateCounts(BaseModel):
    """How many runs are in each state type (types with no run are left out)."""

    counts: dict[StateType, int] = Field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, state_type: StateType | None, number: int) -> None:
        key = state_type or StateType.PENDING
        self.counts[key] = self.counts.get(key, 0) + number


class ChildSummary(BaseModel):
    """A flow run's direct children: its subflow runs and its task runs, by state; and, on
    request, its subflow runs by flow name."""

    flow_run_id: uuid.UUID
    subflows: StateCounts = Field(default_factory=StateCounts)
    task_runs: StateCounts = Field(default_factory=StateCounts)
    subflows_by_flow: dict[str, StateCounts] = Field(default_factory=dict)


class RunMark(BaseModel):
    """One run as a coloured mark: enough to draw it and link to it."""

    id: uuid.UUID
    name: str
    state_type: StateType | None
    state_name: str | None
    created: datetime


class FlowSummary(BaseModel):
    """A flow (by name), how many runs it has, and its most recent runs, newest first."""

    name: str
    run_count: int
    recent: list[RunMark]


class RunChange(BaseModel):
    """A flow run that changed (itself, or one of its task runs), when, and its parent: the
    pages showing either look again."""

    flow_run_id: uuid.UUID
    parent_flow_run_id: uuid.UUID | None
    updated: datetime
