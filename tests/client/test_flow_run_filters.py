"""read_flow_runs filters by tags and by start or creation time, the same on every transport
and database: embedded and through a real server process, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from anabranch.client.base import AnabranchClient
from anabranch.schemas import FlowRun
from client.conftest import store_runs

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
PARIS = timezone(timedelta(hours=2))


def new_flow() -> str:
    return f"flow-{uuid.uuid4().hex[:8]}"


def names(client: AnabranchClient, flow: str, **filters) -> list[str]:
    return [run.name for run in client.read_flow_runs(flow_name=flow, **filters)]


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_tags_keep_the_runs_having_every_one_of_them(client: AnabranchClient) -> None:
    flow = new_flow()
    tagged = {
        "both": ["etl", "nightly"],
        "etl-only": ["etl"],
        "three": ["nightly", "eu", "etl"],
        "none": [],
        "odd": ['say "hi"', "é", "50%_off", "nightly"],
    }
    store_runs(
        client,
        *(
            FlowRun(name=name, flow_name=flow, tags=tags, created=at(i))
            for i, (name, tags) in enumerate(tagged.items())
        ),
    )

    assert names(client, flow, tags=["etl"]) == ["three", "etl-only", "both"]
    assert names(client, flow, tags=["etl", "nightly"]) == ["three", "both"]
    assert names(client, flow, tags=["nightly", "etl", "eu"]) == ["three"]
    assert names(client, flow, tags=["etl", "etl"]) == ["three", "etl-only", "both"]
    assert names(client, flow, tags=['say "hi"', "é"]) == ["odd"]
    assert names(client, flow, tags=["50%"]) == []
    assert names(client, flow, tags=["nowhere"]) == []
    assert names(client, flow, tags=[]) == list(reversed(tagged))


def test_start_time_bounds_include_their_ends_and_skip_runs_not_started(
    client: AnabranchClient,
) -> None:
    flow = new_flow()
    store_runs(
        client,
        *(
            FlowRun(name=f"started-{h}", flow_name=flow, start_time=at(h), created=at(h))
            for h in (0, 1, 2)
        ),
        FlowRun(name="waiting", flow_name=flow, created=at(3)),
    )

    assert names(client, flow, started_after=at(1)) == ["started-2", "started-1"]
    assert names(client, flow, started_before=at(1)) == ["started-1", "started-0"]
    assert names(client, flow, started_after=at(0.5), started_before=at(1.5)) == ["started-1"]
    # The same instant written in another time zone is the same bound.
    assert names(client, flow, started_after=at(1).astimezone(PARIS)) == [
        "started-2",
        "started-1",
    ]
    assert names(client, flow, started_after=at(5)) == []


def test_creation_time_bounds_include_their_ends(client: AnabranchClient) -> None:
    flow = new_flow()
    store_runs(
        client,
        *(FlowRun(name=f"created-{h}", flow_name=flow, created=at(h)) for h in (0, 1, 2)),
    )

    assert names(client, flow, created_after=at(1)) == ["created-2", "created-1"]
    assert names(client, flow, created_before=at(1).astimezone(PARIS)) == [
        "created-1",
        "created-0",
    ]


def test_filters_combine_with_each_other_and_with_paging(client: AnabranchClient) -> None:
    flow = new_flow()
    store_runs(
        client,
        *(
            FlowRun(
                name=f"run-{h}",
                flow_name=flow,
                tags=["even"] if h % 2 == 0 else [],
                start_time=at(h),
                created=at(h),
            )
            for h in range(6)
        ),
    )

    even_since_1 = dict(tags=["even"], started_after=at(1))
    assert names(client, flow, **even_since_1) == ["run-4", "run-2"]
    assert names(client, flow, limit=1, offset=1, **even_since_1) == ["run-2"]


def test_a_time_bound_without_a_time_zone_is_a_value_error_naming_it(
    client: AnabranchClient,
) -> None:
    with pytest.raises(ValueError, match="started_after=2025-03-01T12:00:00 has no time zone"):
        client.read_flow_runs(started_after=datetime(2025, 3, 1, 12))
    with pytest.raises(ValueError, match="created_before"):
        client.read_flow_runs(created_before=datetime(2025, 3, 1, 12))
