"""Slots are leases: a holder killed outright frees them when its lease runs out, a live
holder keeps them however long it runs, reset and delete never break a holder, a lost lease
is reported in the holder's run logs, and Ctrl-C frees slots at once."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time

import pytest

from anabranch import flow, task
from anabranch.client.recorder import flush_all
from anabranch.concurrency.sync import concurrency
from anabranch.exceptions import ConcurrencySlotTimeout, ObjectNotFound
from anabranch.orchestration.concurrency import WAITER_TICKET_SECONDS
from anabranch.task_runners import ThreadPoolTaskRunner

SHORT_LEASE = 2.0


def test_slots_of_a_killed_holder_free_up_once_its_lease_expires(client, spawn, monkeypatch):
    monkeypatch.setenv("ANABRANCH_CONCURRENCY_LEASE_SECONDS", str(SHORT_LEASE))
    client.create_concurrency_limit("x", 1)
    holder = spawn("hold", "x", "--until", "forever", lease_seconds=SHORT_LEASE)
    holder.expect("HOLDING")
    assert "pid" in client.read_concurrency_limit("x").holders[0].holder

    holder.process.send_signal(signal.SIGKILL)
    holder.wait()
    killed = time.monotonic()
    with concurrency("x", timeout_seconds=30):
        waited = time.monotonic() - killed
        (ours,) = client.read_concurrency_limit("x").holders
    assert ours.holder.startswith(f"pid {os.getpid()} ")
    assert waited < SHORT_LEASE + 18


def test_a_holder_running_past_three_lease_times_keeps_its_slot(client, spawn):
    lease = 1.0
    client.create_concurrency_limit("x", 1)
    holder = spawn("hold", "x", lease_seconds=lease)
    holder.expect("HOLDING")
    (first,) = client.read_concurrency_limit("x").holders

    with pytest.raises(ConcurrencySlotTimeout), concurrency("x", timeout_seconds=3.5 * lease):
        pytest.fail("took a slot its holder still renews")
    (renewed,) = client.read_concurrency_limit("x").holders
    assert renewed.lease_id == first.lease_id
    assert renewed.expires_at > first.expires_at

    holder.send("release")
    holder.expect("RELEASED")
    assert holder.wait() == 0
    with concurrency("x", timeout_seconds=30):
        assert client.read_concurrency_limit("x").active_slots == 1


@pytest.mark.parametrize("action", ["reset", "delete"])
def test_reset_or_delete_while_held_leaves_the_holder_running_to_a_clean_exit(
    action: str, client, spawn, wait_until
):
    client.create_concurrency_limit("x", 1)
    holder = spawn("hold", "x", lease_seconds=0.6)  # renewed every 0.2 s
    holder.expect("HOLDING")
    if action == "reset":
        client.reset_concurrency_limit("x")
    else:
        client.delete_concurrency_limit("x")
        with pytest.raises(ObjectNotFound):
            client.read_concurrency_limit("x")
        client.create_concurrency_limit("x", 1)
    assert client.read_concurrency_limit("x").active_slots == 0

    with concurrency("x", timeout_seconds=10):
        # The old holder renews (every 0.2 s) and learns its lease is gone: that renewal
        # takes nothing of ours, and it renews that lease no more.
        wait_until(
            lambda: "were lost" in "".join(holder.stderr),
            what="the old holder to renew and find its lease gone",
        )
        assert client.read_concurrency_limit("x").active_slots == 1
        holder.send("release")
        holder.expect("RELEASED")
        assert holder.wait() == 0
        assert "Traceback" not in "".join(holder.stderr)
        # The old holder's release gave back nothing of ours.
        assert client.read_concurrency_limit("x").active_slots == 1
    assert client.read_concurrency_limit("x").active_slots == 0


def _lost_lease_warnings(client, task_run_id) -> list[str]:
    flush_all()
    logs = client.read_logs(task_run_id=task_run_id)
    return [r.message for r in logs if r.level == logging.WARNING and "were lost" in r.message]


def _hold_in_a_task(
    client, monkeypatch, wait_until, lose_lease, within: float, by_tag: bool = False
) -> list[str]:
    """Run a task holding ``x`` on 1 s leases (renewed every 1/3 s) through ``concurrency()``
    or, ``by_tag``, through its tag; call ``lose_lease(holder)`` once it holds, and return the
    lost-lease warnings its run logs get ``within`` seconds."""
    monkeypatch.setenv("ANABRANCH_CONCURRENCY_LEASE_SECONDS", "1")
    client.create_concurrency_limit("x", 1)
    holding, done = threading.Event(), threading.Event()

    @task(tags=["x"] if by_tag else [])
    def guarded() -> None:
        with contextlib.nullcontext() if by_tag else concurrency("x"):
            holding.set()
            done.wait(30)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def parent() -> None:
        guarded.submit().result()

    runner = threading.Thread(target=parent)
    runner.start()
    try:
        assert holding.wait(20)
        (holder,) = client.read_concurrency_limit("x").holders
        lose_lease(holder)
        wait_until(
            lambda: _lost_lease_warnings(client, holder.run_id),
            timeout=within,
            what="a lost-lease warning in the task run's logs",
        )
        return _lost_lease_warnings(client, holder.run_id)
    finally:
        done.set()
        runner.join(30)


def test_a_lease_that_expired_under_its_holder_is_reported_in_its_task_run_logs(
    client, monkeypatch, wait_until
):
    # As if the holder could not reach the store for longer than its lease: it expires.
    lost = _hold_in_a_task(
        client, monkeypatch, wait_until,
        lambda holder: client.renew_concurrency_leases([holder.lease_id], 0),
        within=15,
    )
    assert len(lost) == 1 and "task run 'guarded-0'" in lost[0] and "['x']" in lost[0]


def test_a_reset_under_a_tagged_task_is_reported_in_its_task_run_logs(
    client, monkeypatch, wait_until
):
    lost = _hold_in_a_task(
        client, monkeypatch, wait_until,
        lambda _holder: client.reset_concurrency_limit("x"),
        within=15, by_tag=True,
    )
    assert len(lost) == 1 and "task run 'guarded-0'" in lost[0] and "['x']" in lost[0]


@pytest.mark.parametrize("action", ["reset", "delete"])
def test_a_reset_or_delete_under_a_holder_is_reported_in_its_task_run_logs(
    action: str, client, monkeypatch, wait_until
):
    def end_the_lease(_holder) -> None:
        if action == "reset":
            client.reset_concurrency_limit("x")
        else:
            client.delete_concurrency_limit("x")

    lost = _hold_in_a_task(client, monkeypatch, wait_until, end_the_lease, within=15)
    assert len(lost) == 1 and "task run 'guarded-0'" in lost[0] and "['x']" in lost[0]


@pytest.mark.parametrize("mode", ["hold", "tagged"])
def test_ctrl_c_frees_held_slots_at_once(mode: str, client, spawn):
    # The default 30 s lease: only the release on interrupt can free the slot this soon.
    client.create_concurrency_limit("x", 1)
    holder = spawn(mode, "x", "--until", "forever")
    holder.expect("HOLDING")
    assert client.read_concurrency_limit("x").active_slots == 1

    holder.process.send_signal(signal.SIGINT)
    assert holder.wait() != 0
    assert "KeyboardInterrupt" in "".join(holder.stderr)
    after = client.read_concurrency_limit("x")
    assert (after.active_slots, after.holders) == (0, [])


def test_ctrl_c_while_waiting_gives_up_the_place_in_line(client, spawn, wait_until):
    client.create_concurrency_limit("x", 1)
    with concurrency("x"):
        waiter = spawn("hold", "x", "--until", "exit")
        wait_until(
            lambda: client.read_concurrency_limit("x").waiting == 1, what="the child to queue"
        )
        waiter.process.send_signal(signal.SIGINT)
        assert waiter.wait() != 0
        # At once, unless the Ctrl-C cut the child's first request short after the store
        # wrote its ticket: that ticket lapses within WAITER_TICKET_SECONDS instead.
        wait_until(
            lambda: client.read_concurrency_limit("x").waiting == 0,
            timeout=WAITER_TICKET_SECONDS + 5, what="the child's place in line to go",
        )
