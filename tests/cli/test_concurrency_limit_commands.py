"""`anabranch concurrency-limit create | ls | inspect | update | reset | delete`, run as the
installed console script on this test's ANABRANCH_HOME, while this process holds slots."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest

from anabranch import flow, task
from anabranch.client import get_client
from anabranch.concurrency.sync import concurrency
from anabranch.exceptions import UnknownConcurrencyLimit
from anabranch.schemas import SlotRequest
from anabranch.testing import wait_until
from cli_runner import ok, one_line_error, run_script

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(home) -> Cli:
    """`anabranch concurrency-limit ...` on this test's home (inherited from os.environ)."""
    return functools.partial(run_script, "concurrency-limit")


def create_limit(name: str, limit: int, slot_decay_per_second: float = 0.0) -> None:
    """Set-up through the client; the command under test runs as the console script."""
    get_client().create_concurrency_limit(name, limit, slot_decay_per_second=slot_decay_per_second)


def row(output: str, first_cell: str) -> list[str]:
    """The cells of the table row starting with ``first_cell``."""
    (line,) = [line for line in output.splitlines() if line.split()[:1] == [first_cell]]
    return line.split()


class Holder:
    """A thread inside ``with concurrency(...)`` until ``leave()``; what the block raised,
    if anything, is in ``errors``."""

    def __init__(self, body: Callable[[threading.Event], None], name: str) -> None:
        self.entered = threading.Event()
        self._leave = threading.Event()
        self.errors: list[BaseException] = []
        self._body = body
        self.thread = threading.Thread(target=self._run, name=name)

    def _run(self) -> None:
        try:
            self._body(self._leave)
        except BaseException as exc:
            self.errors.append(exc)

    def leave(self) -> None:
        self._leave.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


@contextlib.contextmanager
def holding(name: str, occupy: int = 1, thread_name: str = "holder") -> Iterator[Holder]:
    """Hold ``occupy`` slots of ``name`` in another thread for the block."""

    def body(leave: threading.Event) -> None:
        with concurrency(name, occupy=occupy):
            holder.entered.set()
            leave.wait(30)

    holder = Holder(body, thread_name)
    holder.thread.start()
    try:
        assert holder.entered.wait(30), holder.errors
        yield holder
    finally:
        holder.leave()


# --- create and ls -------------------------------------------------------------------------


def test_create_then_ls_shows_name_limit_slots_in_use_status_and_decay(cli: Cli) -> None:
    assert "Created concurrency limit 'db': 10 slots" in ok(cli("create", "db", "10"))
    ok(cli("create", "api", "5", "--slot-decay-per-second", "2.5"))

    listed = ok(cli("ls"))

    assert row(listed, "Name") == ["Name", "Limit", "Active", "slots", "Status", "Decay"]
    assert row(listed, "api") == ["api", "5", "0", "active", "2.5/s"]
    assert row(listed, "db") == ["db", "10", "0", "active", "-"]
    assert listed.index("api") < listed.index("db")


def test_create_on_an_existing_name_resizes_the_limit(cli: Cli) -> None:
    ok(cli("create", "db", "10"))

    assert "Updated concurrency limit 'db': 3 slots" in ok(cli("create", "db", "3"))
    assert get_client().read_concurrency_limit("db").limit == 3


def test_ls_counts_the_slots_this_process_holds(cli: Cli) -> None:
    create_limit("db", 4)

    with holding("db", occupy=3):
        assert row(ok(cli("ls")), "db") == ["db", "4", "3", "active", "-"]

    assert row(ok(cli("ls")), "db") == ["db", "4", "0", "active", "-"]


def test_ls_output_json_is_a_list_of_limits(cli: Cli) -> None:
    create_limit("db", 2)
    create_limit("api", 7, slot_decay_per_second=0.5)

    with holding("db"):
        listed = json.loads(ok(cli("ls", "--output", "json")))

    assert [(item["name"], item["limit"], item["active_slots"]) for item in listed] == [
        ("api", 7, 0),
        ("db", 2, 1),
    ]
    assert listed[0]["slot_decay_per_second"] == 0.5
    assert listed[0]["active"] is True
    # Holders are per limit (`inspect`); a listing does not pretend there are none.
    assert "holders" not in listed[0] and "waiting" not in listed[0]


def test_ls_without_limits_says_how_to_create_one(cli: Cli) -> None:
    result = cli("ls")

    assert ok(result) == ""
    assert "anabranch concurrency-limit create NAME LIMIT" in result.stderr
    assert json.loads(ok(cli("ls", "-o", "json"))) == []


# --- inspect ---------------------------------------------------------------------------------


def wait_for_two_slots(_leave: threading.Event) -> None:
    with concurrency("db", occupy=2):
        pass


def test_inspect_shows_the_holder_its_slots_and_lease_and_who_waits(cli: Cli) -> None:
    create_limit("db", 3)
    client = get_client()

    with holding("db", occupy=2, thread_name="holder"):
        # A second block wants 2 of the 1 free slot: it waits, in line.
        waiter = Holder(wait_for_two_slots, "waiter")
        waiter.thread.start()
        wait_until(lambda: client.read_concurrency_limit("db").waiting == 1)

        shown = ok(cli("inspect", "db"))

    waiter.thread.join(30)
    assert waiter.errors == []
    assert row(shown, "Name") == ["Name", "db"]
    assert row(shown, "Active") == ["Active", "slots", "2", "of", "3"]
    assert row(shown, "Waiting") == ["Waiting", "1"]
    assert row(shown, "Status") == ["Status", "active"]
    assert "Holders" in shown
    holder_row = row(shown, "pid")
    assert holder_row[:4] == ["pid", str(os.getpid()), "thread", "holder"]
    assert holder_row[4:6] == ["-", "2"]  # no run id: a plain thread; 2 slots
    assert len(holder_row) == 10  # since and lease expiry: a date and a time each


def test_inspect_names_the_task_run_holding_slots_and_its_run_id(cli: Cli) -> None:
    create_limit("db", 1)
    inside, leave = threading.Event(), threading.Event()

    @task
    def write_rows() -> None:
        with concurrency("db"):
            inside.set()
            leave.wait(30)

    @flow
    def load() -> None:
        write_rows()

    runner = threading.Thread(target=load)
    runner.start()
    try:
        assert inside.wait(30)
        shown = json.loads(ok(cli("inspect", "db", "-o", "json")))
    finally:
        leave.set()
        runner.join(30)

    (holder,) = shown["holders"]
    assert holder["holder"] == "task run 'write_rows-0'"
    assert holder["run_id"] == str(get_client().read_task_runs()[0].id)


def test_inspect_output_json_has_the_holders_with_their_lease_expiry(cli: Cli) -> None:
    create_limit("db", 5)

    with holding("db", occupy=2):
        shown = json.loads(ok(cli("inspect", "db", "--output", "json")))

    assert (shown["name"], shown["limit"], shown["active_slots"], shown["waiting"]) == (
        "db", 5, 2, 0,
    )
    (holder,) = shown["holders"]
    assert holder["occupy"] == 2
    assert holder["run_id"] is None
    assert holder["holder"].startswith(f"pid {os.getpid()} thread ")
    since = datetime.fromisoformat(holder["since"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(holder["expires_at"].replace("Z", "+00:00"))
    # A 30 s lease, maybe renewed since: at least 30 s after it was taken, never more than
    # 30 s ahead.
    assert (expires - since).total_seconds() >= 30
    assert expires <= datetime.now(timezone.utc) + timedelta(seconds=30)


def test_inspect_without_holders_says_so(cli: Cli) -> None:
    create_limit("db", 1)

    shown = ok(cli("inspect", "db"))

    assert "No holders." in shown
    assert row(shown, "Active") == ["Active", "slots", "0", "of", "1"]


# --- update, reset, delete -------------------------------------------------------------------


def test_update_changes_the_limit_activity_and_decay(cli: Cli) -> None:
    create_limit("db", 10)

    assert "inactive" in ok(cli("update", "db", "--inactive"))
    ok(cli("update", "db", "--limit", "4", "--slot-decay-per-second", "0.25"))
    assert row(ok(cli("ls")), "db") == ["db", "4", "0", "inactive", "0.25/s"]

    ok(cli("update", "db", "--active"))
    limit = get_client().read_concurrency_limit("db")
    assert (limit.limit, limit.active, limit.slot_decay_per_second) == (4, True, 0.25)


def test_an_inactive_limit_limits_nothing(cli: Cli) -> None:
    create_limit("db", 1)
    ok(cli("update", "db", "--inactive"))

    with holding("db"), concurrency("db", timeout_seconds=5):
        pass  # a second holder of a 1-slot limit got in at once


def test_update_without_a_change_says_what_to_pass(cli: Cli) -> None:
    create_limit("db", 1)

    assert "Nothing to update" in one_line_error(cli("update", "db"))


def test_reset_while_held_frees_the_slots_and_the_holder_exits_cleanly(cli: Cli) -> None:
    create_limit("db", 1)

    with holding("db") as holder:
        assert "Reset concurrency limit 'db'" in ok(cli("reset", "db"))

        shown = json.loads(ok(cli("inspect", "db", "-o", "json")))
        assert (shown["active_slots"], shown["holders"]) == (0, [])
        with concurrency("db", timeout_seconds=5):
            pass  # the freed slot is free for someone else while the old holder still runs

    assert holder.errors == []
    assert get_client().read_concurrency_limit("db").active_slots == 0


def test_delete_while_held_removes_the_limit_and_the_holder_exits_cleanly(cli: Cli) -> None:
    create_limit("db", 1)
    create_limit("api", 1)

    with holding("db") as holder:
        assert "Deleted concurrency limit 'db'" in ok(cli("delete", "db"))
        assert [limit["name"] for limit in json.loads(ok(cli("ls", "-o", "json")))] == ["api"]

    assert holder.errors == []
    with pytest.raises(UnknownConcurrencyLimit, match="create it with"), concurrency("db"):
        pass




def test_create_on_an_existing_limit_only_resizes_it(cli: Cli) -> None:
    ok(cli("create", "api", "3", "--slot-decay-per-second", "2"))
    ok(cli("update", "api", "--inactive"))

    ok(cli("create", "api", "5"))

    limit = get_client().read_concurrency_limit("api")
    assert (limit.limit, limit.active, limit.slot_decay_per_second) == (5, False, 2.0)


@pytest.mark.parametrize("command", ["reset", "delete"])
def test_reset_or_delete_while_held_counts_the_holders_lease_as_lost(
    cli: Cli, command: str
) -> None:
    create_limit("db", 1)
    client = get_client()
    (grant,) = client.acquire_concurrency_slots([SlotRequest(names=["db"], holder="test")])
    assert grant.lease_id is not None

    ok(cli(command, "db"))

    assert client.renew_concurrency_leases([grant.lease_id], 30) == [grant.lease_id]
    assert client.release_concurrency_slots(grant.lease_id) is False


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["inspect", "nope"],
        ["inspect", "nope", "-o", "json"],
        ["update", "nope", "--limit", "3"],
        ["reset", "nope"],
        ["delete", "nope"],
    ],
    ids=lambda command: " ".join(command),
)
def test_an_unknown_name_is_one_line_naming_it_and_how_to_create_it(cli: Cli, command) -> None:
    assert one_line_error(cli(*command)) == (
        "Error: No concurrency limit named 'nope'; create it with "
        "`anabranch concurrency-limit create nope LIMIT`."
    )


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", ""])
def test_create_with_a_bad_limit_says_what_a_limit_is(cli: Cli, value: str) -> None:
    assert one_line_error(cli("create", "db", value)) == (
        f"Error: LIMIT must be a whole number of slots, 0 or more; got {value!r}."
    )
    assert get_client().read_concurrency_limits() == []


def test_update_with_a_bad_limit_or_decay_changes_nothing(cli: Cli) -> None:
    create_limit("db", 2)

    assert "--limit must be a whole number" in one_line_error(
        cli("update", "db", "--limit", "-2")
    )
    assert "--slot-decay-per-second must be a number" in one_line_error(
        cli("update", "db", "--slot-decay-per-second", "-0.5")
    )
    assert "--slot-decay-per-second must be a number" in one_line_error(
        cli("create", "db", "2", "--slot-decay-per-second", "fast")
    )
    limit = get_client().read_concurrency_limit("db")
    assert (limit.limit, limit.slot_decay_per_second) == (2, 0.0)


def test_a_limit_of_zero_is_a_valid_limit(cli: Cli) -> None:
    ok(cli("create", "paused", "0"))

    assert row(ok(cli("ls")), "paused") == ["paused", "0", "0", "active", "-"]
