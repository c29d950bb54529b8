"""Taking several limits at once never deadlocks, slots go in arrival order (a large request
is not starved by small ones), and a run waiting for slots is Pending without taking a worker."""

from __future__ import annotations

import json
import threading
import time

from anabranch import flow, task
from anabranch.concurrency.sync import concurrency
from anabranch.exceptions import ConcurrencySlotTimeout
from anabranch.schemas import StateType
from anabranch.task_runners import ThreadPoolTaskRunner

ROUNDS = 100


def assert_disjoint(intervals) -> None:
    ordered = sorted(intervals)
    overlapping = [(a, b) for a, b in zip(ordered, ordered[1:], strict=False) if b[0] < a[1]]
    assert overlapping == []


def test_threads_taking_two_limits_in_opposite_orders_never_deadlock(client):
    client.create_concurrency_limit("a", 1)
    client.create_concurrency_limit("b", 1)
    intervals: list[tuple[float, float]] = []
    errors: list[BaseException] = []

    def caller(names: list[str]) -> None:
        try:
            for _ in range(ROUNDS):
                with concurrency(names):
                    start = time.perf_counter()
                    time.sleep(0.0005)  # a body long enough that overlapping holds would show
                    intervals.append((start, time.perf_counter()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(names,)) for names in (["a", "b"], ["b", "a"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "deadlocked"
    assert errors == []
    assert len(intervals) == 2 * ROUNDS
    assert_disjoint(intervals)


def test_processes_taking_two_limits_in_opposite_orders_never_deadlock(client, spawn):
    client.create_concurrency_limit("a", 1)
    client.create_concurrency_limit("b", 1)
    loops = [spawn("loop", names, "--times", str(ROUNDS)) for names in ("a,b", "b,a")]
    for child in loops:
        child.expect("READY")
    for child in loops:
        child.send("go")
    intervals = []
    for child in loops:
        intervals += json.loads(child.expect("[", timeout=60))
        child.expect("DONE")
        assert child.wait() == 0
    assert len(intervals) == 2 * ROUNDS
    assert_disjoint(intervals)
    for name in ("a", "b"):
        limit = client.read_concurrency_limit(name)
        assert (limit.active_slots, limit.waiting) == (0, 0)


def test_a_waiter_for_every_slot_goes_before_a_later_request_for_a_free_one(
    client, wait_until
):
    client.create_concurrency_limit("three", 3)
    release = threading.Event()
    order: list[str] = []
    holders_in = threading.Barrier(3, timeout=20)

    def hold() -> None:
        with concurrency("three"):
            holders_in.wait()
            release.wait(30)

    def take(label: str, occupy: int) -> None:
        with concurrency("three", occupy=occupy, timeout_seconds=30):
            order.append(label)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for thread in holders:
        thread.start()
    holders_in.wait()
    everything = threading.Thread(target=take, args=("all three", 3))
    everything.start()
    wait_until(lambda: client.read_concurrency_limit("three").waiting == 1, what="the waiter")
    one = threading.Thread(target=take, args=("one", 1))
    one.start()
    wait_until(lambda: client.read_concurrency_limit("three").waiting == 2, what="the 2nd")
    # A slot is free, but the earlier waiter for all three comes first.
    assert client.read_concurrency_limit("three").active_slots == 2
    assert order == []

    release.set()
    for thread in [*holders, everything, one]:
        thread.join(timeout=30)
    assert order == ["all three", "one"]


def test_a_process_asking_for_every_slot_is_not_starved_by_a_stream_of_small_requests(
    client, spawn, wait_until
):
    client.create_concurrency_limit("three", 3)
    stop = threading.Event()
    passes = [0]

    def stream() -> None:
        while not stop.is_set():
            with concurrency("three"):
                time.sleep(0.002)  # overlap, so the three slots are rarely all free
            passes[0] += 1

    streams = [threading.Thread(target=stream) for _ in range(4)]
    for thread in streams:
        thread.start()
    try:
        wait_until(lambda: passes[0] > 20, what="the stream of small requests")
        big = spawn("hold", "three", "--occupy", "3", "--until", "exit")
        big.expect("HOLDING", timeout=30)
        big.expect("RELEASED")
        assert big.wait() == 0
        before = passes[0]
        wait_until(lambda: passes[0] > before, what="the stream to go on afterwards")
    finally:
        stop.set()
        for thread in streams:
            thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in streams)


def test_a_task_waiting_for_slots_is_pending_and_leaves_its_worker_to_others(client):
    client.create_concurrency_limit("db", 1)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with concurrency("db"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(20)

    @task(tags=["db"])
    def tagged() -> str:
        return "tagged"

    @task
    def untagged() -> str:
        return "untagged"

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def parent() -> tuple:
        waiting = tagged.submit()
        other = untagged.submit()
        other_result = other.result(timeout=20)
        meanwhile = (waiting.state.type, waiting.state.message)
        release.set()
        return other_result, meanwhile, waiting.result(timeout=20)

    try:
        other_result, (kind, message), result = parent()
    finally:
        release.set()
        holder.join(30)
    assert (other_result, result) == ("untagged", "tagged")
    assert kind is StateType.PENDING
    assert "Waiting for concurrency limit 'db'" in message

    (run,) = [r for r in client.read_task_runs() if r.name == "tagged-0"]
    history = [(s.state.type, s.state.message or "") for s in client.read_states(run.id)]
    assert any(
        kind is StateType.PENDING and "concurrency limit 'db'" in message
        for kind, message in history
    )
    assert history[-1][0] is StateType.COMPLETED


def test_a_holder_asking_for_a_free_limit_is_not_queued_behind_a_waiter_for_its_slots(
    client, wait_until
):
    client.create_concurrency_limit("a", 1)
    client.create_concurrency_limit("b", 1)
    holding_a = threading.Event()
    outcome: dict[str, object] = {}

    def nested() -> None:
        with concurrency("a"):
            holding_a.set()
            wait_until(lambda: client.read_concurrency_limit("b").waiting == 1, what="waiter")
            try:
                with concurrency("b", timeout_seconds=3):
                    outcome["nested"] = "got b"
            except ConcurrencySlotTimeout as exc:
                outcome["nested"] = exc

    def both() -> None:
        holding_a.wait(20)
        with concurrency(["a", "b"], timeout_seconds=20):
            outcome["both"] = "got a and b"

    threads = [threading.Thread(target=nested), threading.Thread(target=both)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcome == {"nested": "got b", "both": "got a and b"}
