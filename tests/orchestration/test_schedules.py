"""The scheduler and backfills on real SQLite and PostgreSQL stores: upcoming runs made once
however many schedulers tick at once, paused deployments left alone, backfills that do not
repeat themselves, and the late-run policies applied when a worker polls."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from anabranch import _clock
from anabranch.client.embedded import EmbeddedClient
from anabranch.database import write_transaction
from anabranch.orchestration.schedules import (
    AUTO_SCHEDULED_TAG,
    forget_scheduled_runs,
    schedule_runs,
)
from anabranch.schemas import FlowRun, StateType
from anabranch.schemas.deployments import (
    Deployment,
    DeploymentRunRequest,
    LateRunPolicy,
    Schedule,
    WorkerPoll,
)

UTC = timezone.utc
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def deploy(store: EmbeddedClient, schedules: list[Schedule], **fields: Any) -> Deployment:
    store.create_work_pool("pool")
    return store.save_deployment(
        Deployment(
            name="nightly",
            flow_name=f"etl-{uuid.uuid4().hex[:8]}",
            entrypoint="flows.py:etl",
            work_pool_name="pool",
            parameters={"region": "emea"},
            tags=["etl"],
            schedules=schedules,
            **fields,
        )
    )


def tick(store: EmbeddedClient, now: datetime, **options: Any) -> int:
    with write_transaction(store.database_url) as conn:
        return schedule_runs(conn, now=now, **options)


def runs_of(store: EmbeddedClient, dep: Deployment) -> list[FlowRun]:
    runs = store.read_flow_runs(flow_name=dep.flow_name)
    return sorted(runs, key=lambda run: (run.expected_start_time, run.idempotency_key or ""))


def times_of(runs: list[FlowRun]) -> list[datetime]:
    return [run.expected_start_time for run in runs]


def test_the_scheduler_makes_the_next_runs_once_with_the_default_parameters(store):
    dep = deploy(store, [Schedule(cron="0 0 * * *")])

    made = tick(store, NOW)
    again = tick(store, NOW + timedelta(seconds=10))

    runs = runs_of(store, dep)
    assert made == 3 and again == 0  # three runs ahead of a daily schedule, as in Prefect
    assert times_of(runs) == [datetime(2024, 6, d, tzinfo=UTC) for d in (2, 3, 4)]
    for run in runs:
        assert run.state.type is StateType.SCHEDULED
        assert run.parameters == {"region": "emea"}
        assert run.idempotency_key == f"scheduled:{run.expected_start_time.isoformat()}"
        assert set(run.tags) == {"etl", AUTO_SCHEDULED_TAG}
        assert run.work_pool_name == "pool" and run.deployment_id == dep.id


def test_the_scheduler_fills_the_next_hour_but_stops_at_max_runs(store):
    every_minute = deploy(store, [Schedule(interval=60, anchor_date=NOW)])
    every_second = deploy(store, [Schedule(interval=1, anchor_date=NOW)])

    tick(store, NOW)

    assert len(runs_of(store, every_minute)) == 60
    assert len(runs_of(store, every_second)) == 100
    # Five minutes on: the hour's next five minutes, and the next hundred seconds.
    assert tick(store, NOW + timedelta(minutes=5)) == 5 + 100


def test_a_paused_deployment_or_an_inactive_schedule_makes_no_runs(store):
    paused = deploy(store, [Schedule(interval=60)], paused=True)
    inactive = deploy(store, [Schedule(interval=60, active=False)])
    unscheduled = deploy(store, [])

    assert tick(store, NOW) == 0
    assert [runs_of(store, d) for d in (paused, inactive, unscheduled)] == [[], [], []]

    store.set_deployment_paused(paused.id, False)
    assert tick(store, NOW) == 60


def test_two_schedules_firing_at_one_moment_make_one_run(store):
    dep = deploy(store, [Schedule(cron="0 * * * *"), Schedule(interval=1800, anchor_date=NOW)])

    tick(store, NOW + timedelta(seconds=1), min_runs=1, min_horizon=timedelta(hours=2))

    assert times_of(runs_of(store, dep)) == [
        NOW + timedelta(minutes=m) for m in (30, 60, 90, 120)
    ]


def test_one_call_makes_at_most_max_new_runs_and_the_next_goes_on(store):
    dep = deploy(store, [Schedule(interval=60, anchor_date=NOW)])

    assert tick(store, NOW, max_new_runs=25) == 25
    assert tick(store, NOW, max_new_runs=25) == 25
    assert tick(store, NOW, max_new_runs=25) == 10
    assert len({run.expected_start_time for run in runs_of(store, dep)}) == 60


def test_a_deployment_whose_runs_can_not_be_made_does_not_stop_the_others(store):
    strict = deploy(
        store, [Schedule(interval=60)],
        parameter_schema={"type": "object", "required": ["day"], "properties": {"day": {}}},
    )
    fine = deploy(store, [Schedule(interval=3600, anchor_date=NOW)])

    assert tick(store, NOW) == 3
    assert runs_of(store, strict) == [] and len(runs_of(store, fine)) == 3


def test_concurrent_schedulers_make_every_run_exactly_once(store):
    deps = [deploy(store, [Schedule(interval=60, anchor_date=NOW)]) for _ in range(3)]
    schedulers, ticks = 4, 5
    start = threading.Barrier(schedulers)
    made: list[int] = []
    errors: list[BaseException] = []

    def scheduler(index: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(ticks):
                # Each scheduler has its own clock: a microsecond apart is enough.
                now = NOW + timedelta(minutes=i) - timedelta(microseconds=index)
                made.append(tick(store, now))
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)

    threads = [threading.Thread(target=scheduler, args=(i,)) for i in range(schedulers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    for dep in deps:
        times = times_of(runs_of(store, dep))
        assert times == [NOW + timedelta(minutes=m) for m in range(ticks - 1 + 60)]
    assert sum(made) == 3 * (ticks - 1 + 60)


def test_forgetting_scheduled_runs_deletes_the_future_ones_that_have_not_started(store):
    dep = deploy(store, [Schedule(interval=600, anchor_date=NOW)])
    tick(store, NOW)
    asked_for = store.create_flow_run_from_deployment(
        dep.id, DeploymentRunRequest(scheduled_time=NOW + timedelta(hours=2))
    )

    with write_transaction(store.database_url) as conn:
        forgotten = forget_scheduled_runs(conn, dep.id, now=NOW + timedelta(minutes=5))

    assert forgotten == 5  # 12:10 .. 12:50; 12:00 was due already
    assert [run.id for run in runs_of(store, dep)][-1] == asked_for.id
    assert times_of(runs_of(store, dep))[0] == NOW
    assert tick(store, NOW + timedelta(minutes=5)) == 6  # 12:10 .. 13:00


# Backfills


def test_a_backfill_of_seven_days_makes_seven_daily_runs_once(store):
    dep = deploy(store, [Schedule(cron="0 0 * * *")])
    start, end = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 7, tzinfo=UTC)

    runs = store.backfill_deployment(dep.id, start=start, end=end)
    again = store.backfill_deployment(dep.id, start=start, end=end)

    days = [datetime(2024, 5, d, tzinfo=UTC) for d in range(1, 8)]
    assert times_of(runs) == days
    assert [run.id for run in again] == [run.id for run in runs]
    assert len(runs_of(store, dep)) == 7
    for run in runs:
        assert run.state.type is StateType.SCHEDULED
        assert run.parameters == {"region": "emea"}
        assert run.idempotency_key == f"backfill:{run.expected_start_time.isoformat()}"


def test_a_backfill_skips_times_the_scheduler_made_and_the_scheduler_skips_backfilled_ones(
    store,
):
    dep = deploy(store, [Schedule(cron="0 0 * * *")])
    tick(store, datetime(2024, 6, 3, 12, tzinfo=UTC))  # makes June 4, 5, 6

    runs = store.backfill_deployment(
        dep.id, start=datetime(2024, 6, 1, tzinfo=UTC), end=datetime(2024, 6, 8, tzinfo=UTC)
    )

    assert [t.day for t in times_of(runs)] == [1, 2, 3, 7, 8]
    assert tick(store, datetime(2024, 6, 5, 12, tzinfo=UTC)) == 0  # June 6, 7, 8 exist
    all_times = times_of(runs_of(store, dep))
    assert len(all_times) == len(set(all_times)) == 8


def test_a_long_backfill_is_made_in_several_transactions_all_the_same(store):
    dep = deploy(store, [Schedule(interval=3600, anchor_date=datetime(2024, 1, 1, tzinfo=UTC))])
    start = datetime(2024, 1, 1, tzinfo=UTC)
    end = start + timedelta(hours=1199)

    runs = store.backfill_deployment(dep.id, start=start, end=end)
    again = store.backfill_deployment(dep.id, start=start, end=end)

    assert times_of(runs) == [start + timedelta(hours=h) for h in range(1200)]
    assert [run.id for run in again] == [run.id for run in runs]
    assert len(runs_of(store, dep)) == 1200


def test_a_backfill_is_refused_when_it_can_not_be_what_was_meant(store):
    daily = deploy(store, [Schedule(cron="0 0 * * *")])
    unscheduled = deploy(store, [])
    every_second = deploy(store, [Schedule(interval=1)])
    start = datetime(2024, 5, 1, tzinfo=UTC)

    with pytest.raises(ValueError, match="end 2024-04-30T00:00:00\\+00:00 is before start"):
        store.backfill_deployment(daily.id, start=start, end=start - timedelta(days=1))
    with pytest.raises(ValueError, match="has no active schedule"):
        store.backfill_deployment(unscheduled.id, start=start, end=start + timedelta(days=1))
    with pytest.raises(ValueError, match="more than 10,000 runs"):
        store.backfill_deployment(every_second.id, start=start, end=start + timedelta(hours=3))
    with pytest.raises(ValueError, match="start=2024-05-01T00:00:00 has no time zone"):
        store.backfill_deployment(daily.id, start=datetime(2024, 5, 1), end=start)
    assert runs_of(store, daily) == runs_of(store, every_second) == []


# Late runs


def past_runs(store: EmbeddedClient, **fields: Any) -> tuple[Deployment, datetime]:
    """A deployment due every minute since 20.5 minutes ago whose scheduler made its runs
    10.5 minutes ago (then the server went down): 11 due runs, the newest 30 s late."""
    now = _clock.now()
    anchor = now - timedelta(minutes=20, seconds=30)
    dep = deploy(store, [Schedule(interval=60, anchor_date=anchor)], **fields)
    tick(store, now - timedelta(minutes=10, seconds=31))
    return dep, now


def test_the_scheduler_tick_marks_overdue_runs_late(store):
    dep, now = past_runs(store)

    made = store.schedule_runs()

    runs = runs_of(store, dep)
    due = [run for run in runs if run.expected_start_time <= now]
    assert len(due) == 11
    assert {run.state.name for run in due} == {"Late"}
    assert {run.state.type for run in due} == {StateType.SCHEDULED}
    assert {run.state.name for run in runs if run.expected_start_time > now} == {"Scheduled"}
    assert made > 0  # the next hour, from now on


@pytest.mark.parametrize(
    ("policy", "max_lateness", "started_lateness"),
    [
        (LateRunPolicy.RUN, None, [630, 570, 510, 450, 390, 330, 270, 210, 150, 90, 30]),
        (LateRunPolicy.SKIP, 200, [150, 90, 30]),
        (LateRunPolicy.LATEST, None, [30]),
    ],
)
def test_a_worker_poll_applies_the_late_run_policy_to_the_scheduler_runs_only(
    store, policy: LateRunPolicy, max_lateness: float | None, started_lateness: list[int]
):
    dep, now = past_runs(store, late_run_policy=policy, max_lateness_seconds=max_lateness)
    store.schedule_runs()  # marks them Late, as the server's scheduler would
    asked_for = store.create_flow_run_from_deployment(
        dep.id, DeploymentRunRequest(scheduled_time=now - timedelta(hours=1))
    )
    backfilled = store.backfill_deployment(
        dep.id, start=now - timedelta(minutes=21), end=now - timedelta(minutes=15)
    )
    assert len(backfilled) == 6  # 20.5 .. 15.5 minutes ago, which the scheduler never made

    answer = store.poll_work("pool", WorkerPoll(worker_name="w", limit=100))

    started = {run.flow_run.id for run in answer.runs}
    assert {asked_for.id, *(run.id for run in backfilled)} <= started
    scheduled = [r for r in runs_of(store, dep) if (r.idempotency_key or "").startswith("sch")]
    due = [run for run in scheduled if run.expected_start_time <= now]
    lateness = [round((now - run.expected_start_time).total_seconds()) for run in due
                if run.id in started]
    assert lateness == started_lateness
    skipped = [run for run in due if run.id not in started]
    assert len(skipped) == 11 - len(started_lateness)
    for run in skipped:
        assert run.state.type is StateType.CANCELLED and run.state.name == "Skipped"
        assert policy.value in run.state.message
    assert len(started) == len(started_lateness) + 1 + len(backfilled)
