"""Schedules through real servers: the scheduler service makes upcoming runs and marks
overdue ones Late by itself, replicas on one PostgreSQL database never make a run twice, and
backfills over HTTP refuse naive datetimes naming the field."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from anabranch import _clock
from anabranch.client.http import HTTPClient
from anabranch.exceptions import AnabranchError, ObjectNotFound
from anabranch.schemas import FlowRun
from anabranch.schemas.deployments import Deployment, DeploymentRunRequest, Schedule
from anabranch.testing import wait_until
from server_harness import Server, start_server

UTC = timezone.utc


def deploy(client: HTTPClient, schedules: list[Schedule]) -> Deployment:
    client.create_work_pool("scheduled-pool")
    return client.save_deployment(
        Deployment(
            name="every",
            flow_name=f"scheduled-{uuid.uuid4().hex[:8]}",
            entrypoint="flows.py:etl",
            work_pool_name="scheduled-pool",
            parameters={"region": "apac"},
            schedules=schedules,
        )
    )


def scheduled_runs(client: HTTPClient, dep: Deployment) -> list[FlowRun]:
    runs = client.read_flow_runs(flow_name=dep.flow_name)
    return [run for run in runs if (run.idempotency_key or "").startswith("scheduled:")]


def test_the_scheduler_service_makes_upcoming_runs_and_marks_overdue_ones_late(tmp_path: Path):
    server = start_server(
        f"sqlite:///{tmp_path / 'scheduler.db'}", tmp_path, ANABRANCH_SCHEDULER_SECONDS="0.2"
    )
    try:
        client = server.client()
        anchor = _clock.now().replace(microsecond=0) + timedelta(minutes=1)
        dep = deploy(client, [Schedule(interval=60, anchor_date=anchor)])
        overdue = client.create_flow_run_from_deployment(
            dep.id, DeploymentRunRequest(scheduled_time=_clock.now() - timedelta(minutes=1))
        )

        wait_until(lambda: len(scheduled_runs(client, dep)) >= 60, what="60 runs an hour ahead")
        wait_until(lambda: client.read_flow_run(overdue.id).state.name == "Late", what="Late")

        runs = sorted(scheduled_runs(client, dep), key=lambda run: run.expected_start_time)
        assert [run.expected_start_time for run in runs[:3]] == [
            anchor + timedelta(minutes=i) for i in range(3)
        ]
        assert {run.parameters["region"] for run in runs} == {"apac"}
        assert "auto-scheduled" in runs[0].tags
    finally:
        server.stop()


def test_replicas_on_one_postgresql_database_never_make_a_run_twice(
    new_database: Callable[[str], str], tmp_path: Path
):
    database_url = new_database("postgresql")
    replicas = [
        start_server(database_url, tmp_path / f"replica-{i}", ANABRANCH_SCHEDULER_SECONDS="0.05")
        for i in range(2)
    ]
    try:
        clients = [replica.client() for replica in replicas]
        # Every second: each tick (the services' and ours) has new runs to make.
        dep = deploy(clients[0], [Schedule(interval=1)])
        go = threading.Barrier(4)
        errors: list[BaseException] = []

        def hammer(client: HTTPClient) -> None:
            try:
                go.wait(timeout=30)
                for _ in range(10):
                    client.schedule_runs()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=hammer, args=(c,)) for c in clients * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        assert errors == []
        runs = scheduled_runs(clients[1], dep)
        times = [run.expected_start_time for run in runs]
        assert len(runs) >= 100
        assert len(set(times)) == len(times)
    finally:
        for replica in replicas:
            replica.stop()


def test_a_backfill_over_http_makes_seven_daily_runs_once(client: HTTPClient):
    dep = deploy(client, [Schedule(cron="0 0 * * *")])
    start, end = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 7, tzinfo=UTC)

    runs = client.backfill_deployment(dep.id, start=start, end=end)
    again = client.backfill_deployment(dep.id, start=start, end=end)

    assert [run.expected_start_time for run in runs] == [
        datetime(2024, 5, day, tzinfo=UTC) for day in range(1, 8)
    ]
    assert [run.id for run in again] == [run.id for run in runs]
    assert len(client.read_flow_runs(flow_name=dep.flow_name)) == 7
    assert {run.parameters["region"] for run in runs} == {"apac"}


def test_a_backfill_over_http_refuses_naive_datetimes_naming_the_field(
    client: HTTPClient, server: Server
):
    dep = deploy(client, [Schedule(cron="0 0 * * *")])
    url = f"{server.url}/deployments/{dep.id}/backfill"

    answer = httpx.post(url, json={"start": "2024-05-01T00:00:00", "end": "2024-05-02T00:00Z"})

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "start"]
    with pytest.raises(AnabranchError, match="body.end: Input should have timezone info"):
        client.backfill_deployment(
            dep.id, start=datetime(2024, 5, 1, tzinfo=UTC), end=datetime(2024, 5, 2)
        )


def test_a_backfill_over_http_says_why_it_was_refused(client: HTTPClient):
    dep = deploy(client, [Schedule(cron="0 0 * * *")])
    start = datetime(2024, 5, 1, tzinfo=UTC)

    with pytest.raises(AnabranchError, match="is before start"):
        client.backfill_deployment(dep.id, start=start, end=start - timedelta(days=1))
    with pytest.raises(ObjectNotFound, match="No deployment"):
        client.backfill_deployment(uuid.uuid4(), start=start, end=start)


def test_a_scheduler_tick_over_http_returns_how_many_runs_it_made(tmp_path: Path):
    # The server's own scheduler first ticks after an hour, so only this call makes runs.
    server = start_server(
        f"sqlite:///{tmp_path / 'tick.db'}", tmp_path, ANABRANCH_SCHEDULER_SECONDS="3600"
    )
    try:
        client = server.client()
        dep = deploy(client, [Schedule(cron="0 0 * * *")])

        assert client.schedule_runs() == 3  # the next three days
        assert len(scheduled_runs(client, dep)) == 3
        assert client.schedule_runs() == 0
    finally:
        server.stop()
