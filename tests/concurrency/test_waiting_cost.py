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


def test_each_attempt_for_a_long_line_of_waiters_asks_about_the_few_that_can_move(
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
    # Each attempt of the waiting room asks about the few waiters that can move (the head
    # of the line), however long the line: the old waiting room asked about all of them on
    # every attempt, about TASKS * TASKS / 2 requests here. An attempt asks about one
    # waiter per group, plus one per release since the last attempt, plus twice as many as
    # the last attempt granted when all of those moved: at most one per attempt and three
    # per task in all. (How many attempts there are depends on timing: the room also polls
    # for other processes' releases, and through a server releases arrive in batches.)
    assert stats["requests_tried"] <= stats["attempts"] + 3 * TASKS, stats
    assert stats["requests_tried"] < TASKS * TASKS / 10, stats
    assert client.read_concurrency_limit("narrow").active_slots == 0
