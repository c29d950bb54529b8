"""Schedules: the scheduler that makes a deployment's runs ahead of time, at the times its
cron or interval schedules fire (``schedule_times``), and backfills of a past range.

Every run the scheduler makes carries the idempotency key ``scheduled:<UTC time>``, so any
number of scheduler ticks, in any number of server replicas at once, make each run exactly
once: the unique (deployment, idempotency key) index settles every race. Backfilled runs use
``backfill:<UTC time>``: they are late by design, so the late-run policy (which only looks at
``scheduled:`` runs) leaves them alone. Neither kind is made for a time that already has a
run of the other kind.

Like Prefect's scheduler, a tick makes each deployment's upcoming runs until there are at
least ``min_runs`` of them and they reach at least ``min_horizon`` ahead, but never more than
``max_runs`` nor further than ``horizon`` ahead; times that passed while no scheduler ran
are not made up for (``backfill`` does that on request).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch import _clock
from anabranch.database.models import flow_run
from anabranch.exceptions import InvalidDeployment, ObjectNotFound
from anabranch.orchestration.deployment_runs import create_deployment_run
from anabranch.orchestration.deployments import (
    forget_scheduled_runs,
    read_deployment,
    read_deployments,
)
from anabranch.orchestration.late_runs import SCHEDULED_KEY_PREFIX, mark_late
from anabranch.orchestration.schedule_times import check_schedule, schedule_times
from anabranch.schemas import FlowRun
from anabranch.schemas.deployments import Deployment, DeploymentRunRequest, Schedule

# The scheduler's names, wherever they are defined: checking a schedule and computing its
# times (``schedule_times``), dropping a changed schedule's runs (``deployments``).
__all__ = [
    "AUTO_SCHEDULED_TAG",
    "BACKFILL_KEY_PREFIX",
    "BACKFILL_RUNS_PER_TRANSACTION",
    "MAX_BACKFILL_RUNS",
    "backfill",
    "check_schedule",
    "forget_scheduled_runs",
    "make_backfill_runs",
    "plan_backfill",
    "schedule_runs",
    "schedule_times",
    "scheduled_key",
    "tick",
]

logger = logging.getLogger("anabranch.scheduler")

BACKFILL_KEY_PREFIX = "backfill:"
MAX_BACKFILL_RUNS = 10_000
# A long backfill is made in transactions of this many runs, so that on SQLite it never
# holds the store's write lock for long (other writers wait for it).
BACKFILL_RUNS_PER_TRANSACTION = 500
# Runs the scheduler makes carry this tag besides the deployment's, as in Prefect.
AUTO_SCHEDULED_TAG = "auto-scheduled"
_MICROSECOND = timedelta(microseconds=1)
_KEYS_PER_QUERY = 500


def tick(conn: Connection, *, now: datetime) -> int:
    """One scheduler tick: make the upcoming runs, then mark overdue runs Late; returns
    how many runs it made."""
    made = schedule_runs(conn, now=now)
    mark_late(conn, now=now)
    return made


def schedule_runs(
    conn: Connection,
    *,
    now: datetime,
    max_runs: int = 100,
    horizon: timedelta = timedelta(days=100),
    min_runs: int = 3,
    min_horizon: timedelta = timedelta(hours=1),
    max_new_runs: int = 1000,
) -> int:
    """Make the upcoming runs of every deployment that is not paused and has an active
    schedule (see the module's docstring for how many); returns how many it made.

    At most ``max_new_runs`` are made per call, so one call stays a short transaction; the
    next call goes on. A deployment whose runs can not be made (its defaults no longer fit
    the flow, its queue is gone) is logged and skipped, and does not hold up the others.
    """
    made = 0
    for dep in _scheduled_deployments(conn):
        if made >= max_new_runs:
            break
        active = [s for s in dep.schedules if s.active]
        try:
            times = _merged_times(active, now, now + horizon, max_runs, anchor=_anchor(dep))
        except (ValueError, OverflowError) as exc:
            logger.warning("Deployment %r has a schedule we can not use: %s", dep.full_name, exc)
            continue
        times = [t for i, t in enumerate(times) if i < min_runs or t < now + min_horizon]
        taken = _taken_times(conn, dep.id, times, (SCHEDULED_KEY_PREFIX, BACKFILL_KEY_PREFIX))
        tags = sorted({*dep.tags, AUTO_SCHEDULED_TAG})
        for time in times:
            if made >= max_new_runs:
                break
            if time.isoformat() in taken:
                continue
            request = DeploymentRunRequest(
                scheduled_time=time, idempotency_key=scheduled_key(time), tags=tags
            )
            try:
                run = create_deployment_run(conn, dep.id, request, now=now)
            except (ValueError, ObjectNotFound) as exc:
                # Raised before anything is written, and the same for every time: skip it.
                logger.warning("Could not schedule runs of %r: %s", dep.full_name, exc)
                break
            # Another replica may have made it a moment ago; then it is theirs, not ours.
            made += run.created == now
    return made


def backfill(
    conn: Connection,
    deployment_id: uuid.UUID,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[FlowRun]:
    """The runs the deployment's active schedules would have made in [start, end], each
    Scheduled at its own time with the deployment's default parameters.

    Safe to repeat: a second call returns the same runs. Times that already have a run of
    the scheduler are skipped. Workers take these runs like any other, oldest first, under
    the limits of the pool, queue and deployment. (The embedded client makes a long
    backfill in several short transactions: plan_backfill, then make_backfill_runs.)
    """
    times = plan_backfill(conn, deployment_id, start=start, end=end)
    return make_backfill_runs(conn, deployment_id, times, now=now)


def plan_backfill(
    conn: Connection, deployment_id: uuid.UUID, *, start: datetime, end: datetime
) -> list[datetime]:
    """The times a backfill of [start, end] is for, oldest first; ValueError for end before
    start, a deployment without an active schedule, or more than MAX_BACKFILL_RUNS."""
    _clock.require_aware(start, "start")
    _clock.require_aware(end, "end")
    dep = read_deployment(conn, deployment_id)
    if end < start:
        raise InvalidDeployment(
            f"Backfill of {dep.full_name!r}: end {end.isoformat()} is before start "
            f"{start.isoformat()}."
        )
    active = [s for s in dep.schedules if s.active]
    if not active:
        raise InvalidDeployment(
            f"Deployment {dep.full_name!r} has no active schedule to backfill; deploy it "
            "again with --cron or --interval."
        )
    times = _merged_times(
        active, start, end + _MICROSECOND, MAX_BACKFILL_RUNS + 1, anchor=_anchor(dep)
    )
    if len(times) > MAX_BACKFILL_RUNS:
        raise InvalidDeployment(
            f"Backfill of {dep.full_name!r} from {start.isoformat()} to {end.isoformat()} "
            f"would make more than {MAX_BACKFILL_RUNS:,} runs; backfill a shorter range."
        )
    return times


def make_backfill_runs(
    conn: Connection, deployment_id: uuid.UUID, times: Sequence[datetime], *, now: datetime
) -> list[FlowRun]:
    """The backfill runs at ``times`` (made, or found from an earlier call), leaving out
    times the scheduler has a run for; looked up here, in the write transaction."""
    scheduled = _taken_times(conn, deployment_id, times, (SCHEDULED_KEY_PREFIX,))
    made = []
    for time in times:
        if time.isoformat() in scheduled:
            continue
        request = DeploymentRunRequest(
            scheduled_time=time, idempotency_key=f"{BACKFILL_KEY_PREFIX}{time.isoformat()}"
        )
        made.append(create_deployment_run(conn, deployment_id, request, now=now))
    return made


def scheduled_key(time: datetime) -> str:
    """The idempotency key of the scheduler's run at ``time``."""
    return f"{SCHEDULED_KEY_PREFIX}{time.astimezone(timezone.utc).isoformat()}"


def _merged_times(
    schedules: Sequence[Schedule],
    start: datetime,
    end: datetime,
    limit: int,
    *,
    anchor: datetime | None,
) -> list[datetime]:
    # Several schedules firing at one moment make one run.
    times: set[datetime] = set()
    for schedule in schedules:
        times.update(schedule_times(schedule, start, end, limit, anchor=anchor))
    return sorted(times)[:limit]


def _anchor(dep: Deployment) -> datetime:
    # Prefect counts an interval without an anchor from when the schedule was made; ours is
    # the deployment's creation, which a redeploy keeps, so the times do not shift.
    return dep.created.replace(microsecond=0)


def _scheduled_deployments(conn: Connection) -> list[Deployment]:
    # In the same order (flow name, name) in every replica, so concurrent ticks insert, and
    # wait on each other's rows, in one order: they never deadlock.
    return [
        dep for dep in read_deployments(conn)
        if not dep.paused and any(s.active for s in dep.schedules)
    ]


def _taken_times(
    conn: Connection, deployment_id: uuid.UUID, times: Sequence[datetime], prefixes: Sequence[str]
) -> set[str]:
    """Which of ``times`` (as UTC ISO text) already have a run keyed with one of
    ``prefixes``. Looked up by exact key, on the unique index: a deployment's long history
    of runs costs nothing here."""
    keys = [prefix + time.isoformat() for time in times for prefix in prefixes]
    taken: set[str] = set()
    for i in range(0, len(keys), _KEYS_PER_QUERY):
        found = conn.execute(
            sa.select(flow_run.c.idempotency_key).where(
                flow_run.c.deployment_id == deployment_id,
                flow_run.c.idempotency_key.in_(keys[i : i + _KEYS_PER_QUERY]),
            )
        ).scalars()
        taken.update(key.partition(":")[2] for key in found)
    return taken
