"""Waiting for slots costs work in proportion to the waiters that can move: a long line of
waiters is not asked about on every attempt, and a slot request whose answer was lost can be
sent again without taking a second lease."""

from __future__ import annotations

import threading

from anabranch import flow, task
from anabranch.concurrency._broker import get_broker
from anabranch.schemas import SlotRequest, StateType
from anabranch.task_runners import ThreadPoolTaskRunner

TASKS = 300
LIMIT = 4


def test_a_slot_request_sent_twice_is_granted_one_lease(client) -> None:
    client.create_concurrency_limit("db", 2)
    request = SlotRequest(names=["db"], holder="me")

    (first,) = client.acquire_concurrency_slots([request])
    (again,) = client.acquire_concurrency_slots([request])

    assert first.granted and again.granted
    assert again.lease_id == first.lease_id
    limit = client.read_concurrency_limit("db")
    assert limit.active_slots == 1 and len(limit.holders) == 1
    assert client.release_concurrency_slots(first.lease_id)
    assert client.read_concurrency_limit("db").active_slots == 0


def test_a_request_that_only_keeps_its_place_is_never_granted(client) -> None:
    client.create_concurrency_limit("db", 1)
    place = SlotRequest(names=["db"], holder="later", keep_place=True)

    (kept,) = client.acquire_concurrency_slots([place])

    assert not kept.granted and kept.lease_id is None
    assert client.read_concurrency_limit("db").waiting == 1
    # Its place holds: a newer request waits behind it although the slot is free.
    (newer,) = client.acquire_concurrency_slots([SlotRequest(names=["db"], holder="newer")])
    assert not newer.granted and "1 earlier waiter" in newer.waiting_for
    (asked,) = client.acquire_concurrency_slots([place.model_copy(update={"keep_place": False})])
    assert asked.granted


def test_tasks_waiting_on_a_small_limit_are_asked_about_a_bounded_number_of_times(
    client,
) -> None:
    client.create_concurrency_limit("narrow", LIMIT)
    # The first tasks hold their slots until every task has asked: the rest all queue.
    everyone_asked = threading.Event()

    @task(tags=["narrow"])
    def instant(i: int) -> int:
        assert everyone_asked.wait(timeout=60)
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
    def crowd() -> list[int]:
        futures = instant.map(range(TASKS))
        assert get_broker().statistics()["waiting"] == TASKS - LIMIT
        everyone_asked.set()
        return futures.result()

    assert crowd() == list(range(TASKS))

    runs = client.read_task_runs()
    assert len(runs) == TASKS
    assert {run.state.type for run in runs} == {StateType.COMPLETED}
    stats = get_broker().statistics()
    assert stats["waiting"] == 0
    # Each waiter is tried about once per slot that frees for it, not once per release of
    # every other waiter: the old waiting room tried all of them on every attempt, about
    # TASKS * TASKS / 2 requests here.
    assert stats["requests_tried"] <= 4 * TASKS, stats
    assert client.read_concurrency_limit("narrow").active_slots == 0
