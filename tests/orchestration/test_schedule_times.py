"""When a schedule fires: cron in its timezone across DST changes, intervals from an anchor,
and schedules refused with the bad value named."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from anabranch.orchestration.schedules import check_schedule, schedule_times
from anabranch.schemas.deployments import Schedule

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_cron_in_a_timezone_keeps_its_local_time_across_the_spring_dst_change():
    # Berlin moves from UTC+1 to UTC+2 on 2024-03-31.
    schedule = Schedule(cron="0 9 * * *", timezone="Europe/Berlin")

    times = schedule_times(schedule, utc(2024, 3, 29), utc(2024, 4, 2), limit=10)

    assert times == [utc(2024, 3, 29, 8), utc(2024, 3, 30, 8), utc(2024, 3, 31, 7),
                     utc(2024, 4, 1, 7)]
    assert {t.astimezone(BERLIN).hour for t in times} == {9}
    assert all(t.tzinfo is UTC for t in times)


def test_a_cron_in_a_timezone_keeps_its_local_time_across_the_autumn_dst_change():
    # New York moves from UTC-4 to UTC-5 on 2024-11-03.
    schedule = Schedule(cron="30 6 * * *", timezone="America/New_York")

    times = schedule_times(schedule, utc(2024, 11, 2), utc(2024, 11, 5), limit=10)

    assert times == [utc(2024, 11, 2, 10, 30), utc(2024, 11, 3, 11, 30), utc(2024, 11, 4, 11, 30)]
    assert {(t.astimezone(NEW_YORK).hour, t.astimezone(NEW_YORK).minute) for t in times} == {
        (6, 30)
    }


def test_times_are_those_in_the_half_open_range_up_to_the_limit():
    schedule = Schedule(cron="0 0 * * *")

    assert schedule_times(schedule, utc(2024, 6, 1), utc(2024, 6, 4), limit=10) == [
        utc(2024, 6, 1), utc(2024, 6, 2), utc(2024, 6, 3)
    ]
    assert schedule_times(schedule, utc(2024, 6, 1), utc(2024, 6, 30), limit=2) == [
        utc(2024, 6, 1), utc(2024, 6, 2)
    ]
    assert schedule_times(schedule, utc(2024, 6, 1), utc(2024, 6, 1), limit=5) == []


def test_an_interval_counts_from_its_anchor_date():
    schedule = Schedule(interval=600, anchor_date=utc(2024, 6, 1, 9, 5))

    times = schedule_times(schedule, utc(2024, 6, 1, 12), utc(2024, 6, 1, 12, 30), limit=10)

    assert times == [utc(2024, 6, 1, 12, 5), utc(2024, 6, 1, 12, 15), utc(2024, 6, 1, 12, 25)]


def test_an_interval_without_anchor_counts_from_the_anchor_given_else_2020_in_its_timezone():
    hourly = Schedule(interval=3600)
    start, end = utc(2024, 6, 1, 12), utc(2024, 6, 1, 14)

    assert schedule_times(hourly, start, end, 5) == [utc(2024, 6, 1, 12), utc(2024, 6, 1, 13)]
    anchored = schedule_times(hourly, start, end, 5, anchor=utc(2024, 5, 1, 0, 20, 7))
    assert anchored == [utc(2024, 6, 1, 12, 20, 7), utc(2024, 6, 1, 13, 20, 7)]
    daily_in_berlin = Schedule(interval=86400, timezone="Europe/Berlin")
    assert schedule_times(daily_in_berlin, start, utc(2024, 6, 3), 5) == [
        utc(2024, 6, 1, 22), utc(2024, 6, 2, 22)  # midnight in Berlin (UTC+2 in June)
    ]


def test_an_anchor_date_is_the_first_time_but_a_default_anchor_only_sets_the_phase():
    start, end = utc(2024, 6, 1), utc(2024, 6, 1, 4)
    anchored = Schedule(interval=3600, anchor_date=utc(2024, 6, 1, 2, 30))

    assert schedule_times(anchored, start, end, 10) == [utc(2024, 6, 1, 2, 30),
                                                        utc(2024, 6, 1, 3, 30)]
    phased = schedule_times(Schedule(interval=3600), start, end, 10, anchor=utc(2024, 6, 1, 2, 30))
    assert phased == [utc(2024, 6, 1, h, 30) for h in range(4)]


def test_a_naive_anchor_date_is_read_in_the_schedule_timezone():
    schedule = Schedule(
        interval=86400, anchor_date=datetime(2024, 1, 1, 9), timezone="Europe/Berlin"
    )

    assert schedule_times(schedule, utc(2024, 1, 10), utc(2024, 1, 11), 5) == [utc(2024, 1, 10, 8)]


def test_a_daily_interval_keeps_its_wall_clock_time_and_an_hourly_one_its_elapsed_time():
    anchor = datetime(2024, 3, 28, 9, tzinfo=BERLIN)
    daily = Schedule(interval=86400, anchor_date=anchor, timezone="Europe/Berlin")
    hourly = Schedule(interval=3600, anchor_date=anchor, timezone="Europe/Berlin")

    days = schedule_times(daily, utc(2024, 3, 29), utc(2024, 4, 2), 10)
    hours = schedule_times(hourly, utc(2024, 3, 31, 0), utc(2024, 3, 31, 3), 10)

    assert [t.astimezone(BERLIN).hour for t in days] == [9, 9, 9, 9]
    assert days[2] - days[1] == timedelta(hours=23)  # the short day
    assert hours == [utc(2024, 3, 31, 0), utc(2024, 3, 31, 1), utc(2024, 3, 31, 2)]
    assert [t.astimezone(BERLIN).hour for t in hours] == [1, 3, 4]  # 02:00 never happened


def test_a_fractional_interval_does_not_drift_far_from_its_anchor():
    schedule = Schedule(interval=0.1, anchor_date=utc(2020, 1, 1))
    start = utc(2024, 6, 1, 12)

    times = schedule_times(schedule, start, start + timedelta(seconds=1), 20)

    assert times == [start + timedelta(milliseconds=100 * i) for i in range(10)]


@pytest.mark.parametrize(
    ("schedule", "named"),
    [
        (Schedule(cron="61 * * * *"), "'61 * * * *'"),
        (Schedule(cron="every day"), "'every day'"),
        (Schedule(cron="0 0 * * * *"), "'0 0 * * * *' has 6 fields"),
        (Schedule(cron="0 0 31 2 *"), "'0 0 31 2 *' never fires"),
        (Schedule(cron="0 9 * * *", timezone="Mars/Olympus_Mons"), "'Mars/Olympus_Mons'"),
        (Schedule(interval=60, timezone="../etc/passwd"), "'../etc/passwd'"),
        (Schedule(interval=60, timezone="x" * 300), "'xxxx"),
        (Schedule(interval=1e12), "interval 1000000000000.0 s is out of range"),
    ],
)
def test_a_bad_cron_expression_or_timezone_is_refused_naming_it(schedule: Schedule, named: str):
    with pytest.raises(ValueError) as refused:
        check_schedule(schedule)

    assert named in str(refused.value)
    with pytest.raises(ValueError):
        schedule_times(schedule, utc(2024, 1, 1), utc(2024, 2, 1), 5)


def test_good_schedules_pass_the_check():
    for schedule in (
        Schedule(cron="*/15 9-17 * * MON-FRI", timezone="America/New_York"),
        Schedule(cron="@daily"),
        Schedule(interval=30),
    ):
        check_schedule(schedule)


def test_a_naive_range_is_refused_naming_the_argument():
    with pytest.raises(ValueError, match="end=2024-01-02T00:00:00 has no time zone"):
        schedule_times(Schedule(interval=60), utc(2024, 1, 1), datetime(2024, 1, 2), 5)
