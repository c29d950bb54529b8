"""Schedules: when a deployment's cron or interval schedule fires, the scheduler that makes
those runs ahead of time, and backfills of a past range.

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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from croniter import CroniterBadDateError, CroniterError, croniter
from sqlalchemy.engine import Connection

from anabranch import _clock
from anabranch.database.models import flow_run, run_state
from anabranch.exceptions import ObjectNotFound
from anabranch.orchestration.deployments import (
    create_deployment_run,
    read_deployment,
    read_deployment_by_name,
    read_deployments,
)
from anabranch.orchestration.deployments import save_deployment as save_deployment_record
from anabranch.orchestration.deployments import set_deployment_paused as set_paused_record
from anabranch.orchestration.late_runs import SCHEDULED_KEY_PREFIX
from anabranch.schemas import FlowRun, StateType
from anabranch.schemas.deployments import Deployment, DeploymentRunRequest, Schedule

logger = logging.getLogger("anabranch.scheduler")

BACKFILL_KEY_PREFIX = "backfill:"
MAX_BACKFILL_RUNS = 10_000
# A long backfill is made in transactions of this many runs, so that on SQLite it never
# holds the store's write lock for long (other writers wait for it).
BACKFILL_RUNS_PER_TRANSACTION = 500
# Runs the scheduler makes carry this tag besides the deployment's, as in Prefect.
AUTO_SCHEDULED_TAG = "auto-scheduled"
# An interval schedule without an anchor_date, outside a deployment, counts from midnight
# of 2020-01-01 in the schedule's timezone (the scheduler passes the deployment's creation).
DEFAULT_ANCHOR = datetime(2020, 1, 1)
# Intervals of a day or more keep their wall-clock time across DST changes; shorter ones
# are counted in elapsed (UTC) time.
_DAY = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)
_MAX_STEP = timedelta(days=36525)
_KEYS_PER_QUERY = 500


def check_schedule(schedule: Schedule) -> None:
    """Raise ValueError naming the bad value if the schedule's timezone or cron expression
    is not one we can evaluate (cron: five fields or a macro such as ``@daily``)."""
    zone = _zone(schedule.timezone)
    if schedule.cron is not None:
        _check_cron(schedule.cron, zone)
    if schedule.interval is not None and not _MICROSECOND <= _step(schedule.interval) <= _MAX_STEP:
        raise ValueError(
            f"Schedule interval {schedule.interval!r} s is out of range; give seconds from "
            "a microsecond to 100 years, such as 60."
        )


def schedule_times(
    schedule: Schedule,
    start: datetime,
    end: datetime,
    limit: int,
    *,
    anchor: datetime | None = None,
) -> list[datetime]:
    """The first ``limit`` times in [start, end) the schedule fires, in UTC, oldest first.

    Cron is evaluated in the schedule's timezone (a ``0 9 * * *`` in Europe/Berlin stays
    09:00 there across DST changes). An interval starts at ``schedule.anchor_date`` (no
    times before it); without one, ``anchor`` (else DEFAULT_ANCHOR) only sets its phase, so
    a backfill may reach back before it. A naive anchor is read in the schedule's timezone.
    """
    _clock.require_aware(start, "start")
    _clock.require_aware(end, "end")
    check_schedule(schedule)
    if limit <= 0 or end <= start:
        return []
    zone = _zone(schedule.timezone)
    if schedule.cron is not None:
        return _cron_times(schedule.cron, zone, start, end, limit)
    assert schedule.interval is not None  # Invariant: the model holds one kind or the other
    first = schedule.anchor_date or anchor or DEFAULT_ANCHOR
    if first.tzinfo is None:
        first = first.replace(tzinfo=zone)
    step = _step(schedule.interval)
    starts = schedule.anchor_date is not None
    return _interval_times(first, step, zone, start, end, limit, starts_at_anchor=starts)


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
        raise ValueError(
            f"Backfill of {dep.full_name!r}: end {end.isoformat()} is before start "
            f"{start.isoformat()}."
        )
    active = [s for s in dep.schedules if s.active]
    if not active:
        raise ValueError(
            f"Deployment {dep.full_name!r} has no active schedule to backfill; deploy it "
            "again with --cron or --interval."
        )
    times = _merged_times(
        active, start, end + _MICROSECOND, MAX_BACKFILL_RUNS + 1, anchor=_anchor(dep)
    )
    if len(times) > MAX_BACKFILL_RUNS:
        raise ValueError(
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


def forget_scheduled_runs(conn: Connection, deployment_id: uuid.UUID, *, now: datetime) -> int:
    """Delete the deployment's future runs the scheduler made that have not started; for
    when its schedules change or it is paused, so the old schedule's runs do not run.
    The next tick makes the runs of the new schedule. Returns how many went."""
    doomed = sa.select(flow_run.c.id).where(
        flow_run.c.deployment_id == deployment_id,
        flow_run.c.state_type == StateType.SCHEDULED.value,
        flow_run.c.expected_start_time > now,
        flow_run.c.idempotency_key.startswith(SCHEDULED_KEY_PREFIX),
    )
    ids = list(conn.execute(doomed).scalars())
    if ids:
        conn.execute(sa.delete(run_state).where(run_state.c.run_id.in_(ids)))
        conn.execute(sa.delete(flow_run).where(flow_run.c.id.in_(ids)))
    return len(ids)


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


def _cron_times(
    expression: str, zone: ZoneInfo, start: datetime, end: datetime, limit: int
) -> list[datetime]:
    # croniter steps strictly after its start; begin a second early so `start` may match.
    cursor = croniter(expression, (start - timedelta(seconds=1)).astimezone(zone))
    times: list[datetime] = []
    while len(times) < limit:
        try:
            time = cursor.get_next(datetime).astimezone(timezone.utc)
        except (CroniterBadDateError, OverflowError, ValueError):  # none, or past 9999
            break
        if time >= end:
            break
        if time >= start and (not times or time > times[-1]):
            times.append(time)
    return times


def _interval_times(
    anchor: datetime,
    step: timedelta,
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
    limit: int,
    *,
    starts_at_anchor: bool,
) -> list[datetime]:
    step_us = step // _MICROSECOND
    # The first k with anchor + k * step >= start, in integer microseconds (no float drift).
    k = -(-((start - anchor) // _MICROSECOND) // step_us)
    if starts_at_anchor:
        k = max(0, k)
    if step >= _DAY:
        # Wall-clock arithmetic in the zone: a daily 09:00 stays 09:00 across DST.
        local = anchor.astimezone(zone).replace(tzinfo=None)

        def at(i: int) -> datetime:
            return (local + i * step).replace(tzinfo=zone).astimezone(timezone.utc)

        # A DST change moves wall-clock times by hours, a step is a day or more: one step
        # back at most.
        if (k > 0 or not starts_at_anchor) and at(k - 1) >= start:
            k -= 1
    else:
        utc_anchor = anchor.astimezone(timezone.utc)

        def at(i: int) -> datetime:
            return utc_anchor + i * step

    times: list[datetime] = []
    while len(times) < limit:
        try:
            time = at(k)
        except OverflowError:  # past the year 9999: no more times
            break
        k += 1
        if time >= end:
            break
        if time >= start:
            times.append(time)
    return times


def _step(seconds: float) -> timedelta:
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        return timedelta.max


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(
            f"Unknown timezone {name!r} in a schedule; use an IANA name such as "
            "'UTC' or 'Europe/Berlin'."
        ) from exc


def _check_cron(expression: str, zone: ZoneInfo) -> None:
    fields = expression.split()
    if len(fields) != 5 and not (len(fields) == 1 and expression.strip().startswith("@")):
        raise ValueError(
            f"Cron expression {expression!r} has {len(fields)} fields; use five "
            "(minute hour day-of-month month day-of-week), such as '0 9 * * *'."
        )
    try:
        croniter(expression, datetime(2020, 1, 1, tzinfo=zone)).get_next(datetime)
    except CroniterBadDateError as exc:
        raise ValueError(f"Cron expression {expression!r} never fires.") from exc
    except (CroniterError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"Invalid cron expression {expression!r} ({exc}); use five fields "
            "(minute hour day-of-month month day-of-week), such as '0 9 * * *'."
        ) from exc


def save_deployment(conn: Connection, deployment: Deployment, *, now: datetime) -> Deployment:
    """Save a deployment (see deployments.save_deployment) after checking its schedules;
    when its schedules change or it is paused, the old schedule's future runs go."""
    for schedule in deployment.schedules:
        check_schedule(schedule)
    try:
        before: Deployment | None = read_deployment_by_name(conn, deployment.full_name)
    except ObjectNotFound:
        before = None
    saved = save_deployment_record(conn, deployment, now=now)
    if before is not None and (before.schedules != saved.schedules or saved.paused):
        forget_scheduled_runs(conn, saved.id, now=now)
    return saved


def set_deployment_paused(
    conn: Connection, deployment_id: uuid.UUID, paused: bool, *, now: datetime
) -> Deployment:
    """Pause (its schedule's future runs go) or resume a deployment's schedules."""
    saved = set_paused_record(conn, deployment_id, paused, now=now)
    if paused:
        forget_scheduled_runs(conn, deployment_id, now=now)
    return saved
