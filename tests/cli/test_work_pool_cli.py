"""`anabranch work-pool ...` and `anabranch work-queue ...`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from anabranch.schemas.deployments import WorkerPoll
from cli_runner import ok, one_line_error, run_script


def inspect_pool(cli, name: str) -> dict[str, Any]:
    return json.loads(ok(cli("work-pool", "inspect", name, "--output", "json")))


def test_create_then_inspect_shows_the_limit_and_default_queue(cli) -> None:
    created = ok(cli("work-pool", "create", "etl", "--concurrency-limit", "10"))

    assert "Created work pool 'etl': limit 10" in created
    pool = inspect_pool(cli, "etl")
    assert pool["name"] == "etl"
    assert pool["type"] == "process"
    assert pool["concurrency_limit"] == 10
    assert pool["paused"] is False
    assert [q["name"] for q in pool["queues"]] == ["default"]
    assert pool["workers"] == []


def test_creating_an_existing_pool_sets_its_limit(cli) -> None:
    ok(cli("work-pool", "create", "etl"))

    again = ok(cli("work-pool", "create", "etl", "--concurrency-limit", "3"))

    assert "Updated work pool 'etl': limit 3" in again
    assert inspect_pool(cli, "etl")["concurrency_limit"] == 3


def test_set_and_clear_the_concurrency_limit(cli) -> None:
    ok(cli("work-pool", "create", "etl"))

    ok(cli("work-pool", "set-concurrency-limit", "etl", "4"))
    assert inspect_pool(cli, "etl")["concurrency_limit"] == 4
    ok(cli("work-pool", "clear-concurrency-limit", "etl"))
    assert inspect_pool(cli, "etl")["concurrency_limit"] is None


def test_pause_and_resume(cli) -> None:
    ok(cli("work-pool", "create", "etl"))

    assert "Paused work pool 'etl'" in ok(cli("work-pool", "pause", "etl"))
    assert inspect_pool(cli, "etl")["paused"] is True
    ok(cli("work-pool", "resume", "etl"))
    assert inspect_pool(cli, "etl")["paused"] is False


def test_ls_lists_pools_by_name_in_a_table_and_as_json(cli) -> None:
    ok(cli("work-pool", "create", "ml", "--concurrency-limit", "2"))
    ok(cli("work-pool", "create", "etl"))

    table = ok(cli("work-pool", "ls"))
    listed = json.loads(ok(cli("work-pool", "ls", "--output", "json")))

    assert table.index("etl") < table.index("ml")
    assert [(p["name"], p["concurrency_limit"]) for p in listed] == [("etl", None), ("ml", 2)]


def test_inspect_shows_workers_online_with_their_last_heartbeat(cli, client) -> None:
    ok(cli("work-pool", "create", "etl"))
    client.poll_work("etl", WorkerPoll(worker_name="box-1", limit=0))

    (worker,) = inspect_pool(cli, "etl")["workers"]
    table = ok(cli("work-pool", "inspect", "etl"))

    assert worker["name"] == "box-1"
    assert worker["online"] is True
    assert worker["last_heartbeat"]
    assert "box-1" in table
    assert "online" in table


def test_delete_removes_the_pool(cli) -> None:
    ok(cli("work-pool", "create", "etl"))

    ok(cli("work-pool", "delete", "etl"))

    assert json.loads(ok(cli("work-pool", "ls", "--output", "json"))) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("work-pool", "create", "etl", "--concurrency-limit", "-1"), "0 or more; got '-1'"),
        (("work-pool", "create", "etl", "--type", "docker"), "type 'docker' is not supported"),
        (("work-pool", "set-concurrency-limit", "etl", "-2"), "0 or more; got '-2'"),
        (("work-pool", "inspect", "nope"), "No work pool named 'nope'"),
        (("work-pool", "delete", "nope"), "No work pool named 'nope'"),
        (("work-pool", "set-concurrency-limit", "nope", "3"), "No work pool named 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_1(cli, args: tuple[str, ...], message: str) -> None:
    assert message in one_line_error(cli(*args))


def test_the_installed_script_reports_a_missing_pool_in_one_line() -> None:
    line = one_line_error(run_script("work-pool", "inspect", "nope"))

    assert "create it with `anabranch work-pool create nope`" in line


# Work queues


def test_queues_are_listed_by_priority(cli) -> None:
    ok(cli("work-pool", "create", "etl"))
    ok(cli("work-queue", "create", "bulk", "--pool", "etl", "--priority", "5"))
    ok(cli("work-queue", "create", "urgent", "--pool", "etl", "--priority", "1",
           "--concurrency-limit", "2"))

    listed = json.loads(ok(cli("work-queue", "ls", "--pool", "etl", "--output", "json")))
    table = ok(cli("work-queue", "ls", "--pool", "etl"))

    assert [(q["name"], q["priority"]) for q in listed][-1] == ("bulk", 5)
    assert ("urgent", 1) in [(q["name"], q["priority"]) for q in listed]
    assert table.index("urgent") < table.index("bulk")
    assert inspect_pool(cli, "etl")["queues"][-1]["name"] == "bulk"


def test_queue_inspect_limit_pause_and_delete(cli) -> None:
    ok(cli("work-pool", "create", "etl"))
    ok(cli("work-queue", "create", "urgent", "--pool", "etl"))

    def queue() -> dict[str, Any]:
        return json.loads(
            ok(cli("work-queue", "inspect", "urgent", "--pool", "etl", "--output", "json"))
        )

    assert queue()["concurrency_limit"] is None
    ok(cli("work-queue", "set-concurrency-limit", "urgent", "3", "--pool", "etl"))
    assert queue()["concurrency_limit"] == 3
    ok(cli("work-queue", "clear-concurrency-limit", "urgent", "--pool", "etl"))
    assert queue()["concurrency_limit"] is None
    ok(cli("work-queue", "pause", "urgent", "--pool", "etl"))
    assert queue()["paused"] is True
    ok(cli("work-queue", "resume", "urgent", "--pool", "etl"))
    assert queue()["paused"] is False
    ok(cli("work-queue", "delete", "urgent", "--pool", "etl"))
    listed = json.loads(ok(cli("work-queue", "ls", "--output", "json")))
    assert [q["name"] for q in listed] == ["default"]


def test_queue_ls_without_a_pool_lists_every_pool_s_queues(cli) -> None:
    ok(cli("work-pool", "create", "etl"))
    ok(cli("work-pool", "create", "ml"))

    listed = json.loads(ok(cli("work-queue", "ls", "--output", "json")))

    assert [(q["work_pool_name"], q["name"]) for q in listed] == [
        ("etl", "default"),
        ("ml", "default"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("work-queue", "create", "q", "--pool", "nope"), "No work pool named 'nope'"),
        (("work-queue", "create", "q", "--pool", "etl", "--priority", "0"), "1 or more; got '0'"),
        (("work-queue", "inspect", "nope", "--pool", "etl"), "No work queue 'nope'"),
        (("work-queue", "delete", "default", "--pool", "etl"), "default queue"),
        (("work-queue", "set-concurrency-limit", "default", "x", "--pool", "etl"), "got 'x'"),
    ],
)
def test_bad_queue_input_is_one_line_and_exit_code_1(
    cli, args: tuple[str, ...], message: str
) -> None:
    ok(cli("work-pool", "create", "etl"))

    assert message in one_line_error(cli(*args))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("worker", "start", "--pool", "nope"), "No work pool named 'nope'"),
        (("worker", "start", "--pool", "etl", "--limit", "0"), "1 or more; got '0'"),
    ],
)
def test_a_worker_with_bad_input_stops_at_once_with_one_line(
    cli, args: tuple[str, ...], message: str
) -> None:
    ok(cli("work-pool", "create", "etl"))

    assert message in one_line_error(cli(*args))
