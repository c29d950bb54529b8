"""When a schedule fires: cron and interval times, over plain values (no database).

Cron is evaluated in the schedule's timezone, so a ``0 9 * * *`` in Europe/Berlin stays at
09:00 there across DST changes; intervals of a day or more keep their wall-clock time too,
shorter ones count elapsed (UTC) time. The scheduler (``schedules``) makes runs at these
times, and a deployment's schedules are checked here before it is saved.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from anabranch import _clock
from anabranch.exceptions import InvalidDeployment
from anabranch.schemas.deployments import Schedule

# An interval schedule without an anchor_date, outside a deployment, counts from midnight
# of 2020-01-01 in the schedule's timezone (the scheduler passes the deployment's creation).
DEFAULT_ANCHOR = datetime(2020, 1, 1)
# Intervals of a day or more keep their wall-clock time across DST changes; shorter ones
# are counted in elapsed (UTC) time.
_DAY = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)
_MAX_STEP = timedelta(days=36525)


def check_schedule(schedule: Schedule) -> None:
    """InvalidDeployment (a ValueError) naming the bad value if the schedule's timezone,
    cron expression or interval is not one we can evaluate (cron: five fields or a macro
    such as ``@daily``; an interval from a microsecond to 100 years)."""
    zone = _zone(schedule.timezone)
    if schedule.cron is not None:
        _check_cron(schedule.cron, zone)
    if schedule.interval is not None and not _MICROSECOND <= _step(schedule.interval) <= _MAX_STEP:
        raise InvalidDeployment(
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
        raise InvalidDeployment(
            f"Unknown timezone {name!r} in a schedule; use an IANA name such as "
            "'UTC' or 'Europe/Berlin'."
        ) from exc


def _check_cron(expression: str, zone: ZoneInfo) -> None:
    fields = expression.split()
    if len(fields) != 5 and not (len(fields) == 1 and expression.strip().startswith("@")):
        raise InvalidDeployment(
            f"Cron expression {expression!r} has {len(fields)} fields; use five "
            "(minute hour day-of-month month day-of-week), such as '0 9 * * *'."
        )
    try:
        croniter(expression, datetime(2020, 1, 1, tzinfo=zone)).get_next(datetime)
    except CroniterBadDateError as exc:
        raise InvalidDeployment(f"Cron expression {expression!r} never fires.") from exc
    except (CroniterError, ValueError, KeyError, TypeError) as exc:
        raise InvalidDeployment(
            f"Invalid cron expression {expression!r} ({exc}); use five fields "
            "(minute hour day-of-month month day-of-week), such as '0 9 * * *'."
        ) from exc
