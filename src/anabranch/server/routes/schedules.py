"""Schedules: backfilling a deployment's past range, and one scheduler tick on request.

The server's own scheduler service ticks by itself; the tick route lets a caller (a test, a
script after changing schedules) have the upcoming runs made now rather than at the next tick.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, Field

from anabranch.schemas import FlowRun
from anabranch.server.dependencies import Store

router = APIRouter(tags=["schedules"])

_404: dict[int | str, dict[str, Any]] = {404: {"description": "No such deployment."}}


class BackfillRequest(BaseModel):
    """The range to backfill, both ends included; datetimes must carry a timezone."""

    start: AwareDatetime = Field(description="First time to make, e.g. 2024-06-01T00:00Z.")
    end: AwareDatetime = Field(description="Last time to make (included).")


class Tick(BaseModel):
    created: int


@router.post("/deployments/{deployment_id}/backfill", responses=_404)
def backfill_deployment(
    deployment_id: uuid.UUID, body: BackfillRequest, store: Store
) -> list[FlowRun]:
    """Make the runs the deployment's schedules would have made in [start, end]; a repeated
    call returns the same runs. 400 for end before start, no active schedule, or a range
    of more than 10,000 runs."""
    return store.backfill_deployment(deployment_id, start=body.start, end=body.end)


@router.post("/schedules/tick")
def tick(store: Store) -> Tick:
    """One scheduler tick: make scheduled deployments' upcoming runs, mark overdue runs Late."""
    return Tick(created=store.schedule_runs())
