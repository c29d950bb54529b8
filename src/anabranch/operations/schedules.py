# mypy: disable-error-code="empty-body"
"""Schedules: the runs a deployment's schedules make, ahead of time or for a past range."""

from __future__ import annotations

import uuid

from pydantic import AwareDatetime

from anabranch.exceptions import InvalidDeployment, ObjectNotFound
from anabranch.operations._declare import operation, wakes_workers
from anabranch.schemas import FlowRun


class ScheduleOperations:
    """Scheduled runs."""

    # Ten thousand runs take the server a while; the runs' idempotency keys make a repeated
    # backfill a no-op, so it is safe to resend. The embedded client writes it in short
    # transactions (a long backfill must not stall the store's other writers).
    @operation("POST", "/deployments/{deployment_id}/backfill", implementation=None,
               errors=[InvalidDeployment, ObjectNotFound], wakes=wakes_workers,
               answer_seconds=300.0)
    def backfill_deployment(
        self, deployment_id: uuid.UUID, *, start: AwareDatetime, end: AwareDatetime
    ) -> list[FlowRun]:
        """The runs the deployment's schedules would have made in [start, end] (aware
        datetimes), each Scheduled at its own time; safe to repeat. InvalidDeployment for
        end before start, no schedule, or over 10,000 runs."""

    @operation("POST", "/schedules/tick", implementation="schedules:tick", wakes=wakes_workers)
    def schedule_runs(self) -> int:
        """One scheduler tick: make the upcoming runs of scheduled deployments and mark
        overdue runs Late; returns how many runs it made. The server does this by itself;
        a worker on the embedded store calls it now and then."""
