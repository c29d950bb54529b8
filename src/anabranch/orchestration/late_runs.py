"""Late runs: scheduled runs that did not start on time, and each deployment's policy for
them, so that after an outage a backlog of missed schedule slots does not all run at once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch.database.models import deployment, flow_run
from anabranch.orchestration.transitions import set_state
from anabranch.schemas import StateType
from anabranch.schemas.deployments import LateRunPolicy

# A scheduled run this many seconds past its time is Late.
LATE_AFTER_SECONDS = 15.0
# Runs the scheduler made carry idempotency keys with this prefix; only they follow the
# late-run policy (a run someone asked for, or a backfill, runs whenever it can).
SCHEDULED_KEY_PREFIX = "scheduled:"
# `skip` without a max_lateness_seconds of its own skips runs later than this.
DEFAULT_MAX_LATENESS_SECONDS = 60.0


def mark_late(conn: Connection, *, now: datetime, after: float = LATE_AFTER_SECONDS) -> int:
    """Rename overdue Scheduled runs to Late (still SCHEDULED, so workers take them)."""
    overdue = conn.execute(
        sa.select(flow_run.c.id, flow_run.c.expected_start_time).where(
            flow_run.c.state_type == StateType.SCHEDULED.value,
            flow_run.c.state_name == "Scheduled",
            flow_run.c.expected_start_time < now - timedelta(seconds=after),
        )
    ).all()
    marked = 0
    for run_id, expected in overdue:
        message = f"Should have started at {expected.isoformat(timespec='seconds')}."
        marked += set_state(
            conn, flow_run, run_id, StateType.SCHEDULED, "Late", message, now=now,
            only_from=[StateType.SCHEDULED],
        )
    return marked


def apply_late_run_policies(
    conn: Connection,
    *,
    now: datetime,
    work_pool_name: str | None = None,
    deployment_ids: Sequence[uuid.UUID] = (),
) -> int:
    """Skip the due scheduled runs a deployment's policy says not to run (those of the
    deployments of ``work_pool_name``, or of ``deployment_ids``); returns how many."""
    query = sa.select(
        deployment.c.id, deployment.c.late_run_policy, deployment.c.max_lateness_seconds
    ).where(deployment.c.late_run_policy != LateRunPolicy.RUN.value)
    if work_pool_name is not None:
        query = query.where(deployment.c.work_pool_name == work_pool_name)
    else:
        query = query.where(deployment.c.id.in_(deployment_ids))
    skipped = 0
    for deployment_id, policy, max_lateness in conn.execute(query).all():
        due = conn.execute(
            sa.select(flow_run.c.id, flow_run.c.expected_start_time)
            .where(
                flow_run.c.deployment_id == deployment_id,
                flow_run.c.state_type == StateType.SCHEDULED.value,
                flow_run.c.expected_start_time <= now,
                flow_run.c.idempotency_key.startswith(SCHEDULED_KEY_PREFIX),
            )
            .order_by(flow_run.c.expected_start_time)
        ).all()
        if LateRunPolicy(policy) is LateRunPolicy.LATEST:
            doomed = [(run_id, "a newer scheduled run replaces it") for run_id, _ in due[:-1]]
        else:
            limit = DEFAULT_MAX_LATENESS_SECONDS if max_lateness is None else max_lateness
            doomed = [
                (run_id, f"{(now - expected).total_seconds():.0f} s late, more than {limit:g} s")
                for run_id, expected in due
                if (now - expected).total_seconds() > limit
            ]
        for run_id, why in doomed:
            skipped += set_state(
                conn, flow_run, run_id, StateType.CANCELLED, "Skipped",
                f"Skipped by the deployment's late-run policy {policy!r}: {why}.",
                now=now, only_from=[StateType.SCHEDULED],
            )
    return skipped
