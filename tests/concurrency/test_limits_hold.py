"""A limit of N means at most N holders at once, measured from recorded timestamps, whatever
takes the slots: task tags, ``concurrency_limit=`` on flows, ``concurrency()`` blocks from
threads or coroutines; and the edges of ``concurrency()``: rate limits, impossible requests,
timeouts, unknown names and inactive limits.

Every body waits at a barrier of exactly the limit, so each wave is fully overlapped: fewer
slots than the limit would break the barrier, more would show as a larger overlap.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from anabranch import flow, task
from anabranch.concurrency import asyncio as aconcurrency
from anabranch.concurrency.sync import concurrency, rate_limit
from anabranch.exceptions import (
    ConcurrencySlotError,
    ConcurrencySlotTimeout,
    ObjectNotFound,
    UnknownConcurrencyLimit,
)
from anabranch.schemas import StateType
from anabranch.task_runners import ThreadPoolTaskRunner

LIMIT = 10
CALLERS = 100
BARRIER_SECONDS = 30


def most_at_once(intervals) -> int:
    """The largest number of [start, end] intervals open at one moment (an interval ending
    when another starts does not overlap it)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, delta in events:
        current += delta
        most = max(most, current)
    return most


def test_a_tag_limit_of_ten_keeps_a_hundred_tasks_to_exactly_ten_at_once(client):
    client.create_concurrency_limit("ten-at-once", LIMIT)
    wave = threading.Barrier(LIMIT, timeout=BARRIER_SECONDS)

    @task(tags=["ten-at-once"])
    def tagged(i: int) -> int:
        wave.wait()
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2 * LIMIT))
    def parent() -> list[int]:
        return tagged.map(range(CALLERS)).result()

    assert parent() == list(range(CALLERS))
    runs = client.read_task_runs()
    assert len(runs) == CALLERS
    assert {r.state.type for r in runs} == {StateType.COMPLETED}
    assert most_at_once([(r.start_time, r.end_time) for r in runs]) == LIMIT
    assert client.read_concurrency_limit("ten-at-once").active_slots == 0


def test_concurrency_limit_on_a_flow_keeps_a_hundred_subflows_to_exactly_ten_at_once(client):
    wave = threading.Barrier(LIMIT, timeout=BARRIER_SECONDS)

    @flow(name="capped-child", concurrency_limit=LIMIT)
    def child(i: int) -> int:
        wave.wait()
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2 * LIMIT))
    def parent() -> list[int]:
        return child.map(range(CALLERS)).result()

    assert parent() == list(range(CALLERS))
    children = [r for r in client.read_flow_runs() if r.flow_name == "capped-child"]
    assert len(children) == CALLERS
    assert {r.state.type for r in children} == {StateType.COMPLETED}
    assert most_at_once([(r.start_time, r.end_time) for r in children]) == LIMIT
    implicit = client.read_concurrency_limit("flow:capped-child")
    assert (implicit.limit, implicit.active_slots) == (LIMIT, 0)


def test_concurrency_blocks_from_a_hundred_threads_hold_exactly_ten_at_once(client):
    client.create_concurrency_limit("threads", LIMIT)
    wave = threading.Barrier(LIMIT, timeout=BARRIER_SECONDS)
    intervals: list[tuple[float, float]] = []
    errors: list[BaseException] = []

    def caller() -> None:
        try:
            with concurrency("threads"):
                start = time.perf_counter()
                wave.wait()
                intervals.append((start, time.perf_counter()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(intervals) == CALLERS
    assert most_at_once(intervals) == LIMIT
    assert client.read_concurrency_limit("threads").active_slots == 0


def test_async_concurrency_blocks_gathered_hold_exactly_ten_at_once(client):
    client.create_concurrency_limit("coroutines", LIMIT)
    intervals: list[tuple[float, float]] = []

    async def main() -> None:
        wave = asyncio.Barrier(LIMIT)

        async def caller() -> None:
            async with aconcurrency.concurrency("coroutines"):
                start = time.perf_counter()
                await wave.wait()
                intervals.append((start, time.perf_counter()))

        await asyncio.wait_for(asyncio.gather(*(caller() for _ in range(CALLERS))), 60)

    asyncio.run(main())
    assert len(intervals) == CALLERS
    assert most_at_once(intervals) == LIMIT
    assert client.read_concurrency_limit("coroutines").active_slots == 0


def test_rate_limit_lets_calls_through_no_faster_than_the_slot_decay(client):
    # Two slots that drain at 20 per second: the first two calls pass at once, and each of
    # the next four needs 1/20 s of decay, so six calls take at least 0.2 s.
    client.create_concurrency_limit("api", 2, slot_decay_per_second=20)
    started = time.perf_counter()
    for _ in range(6):
        rate_limit("api", timeout_seconds=10)
    elapsed = time.perf_counter() - started
    assert 0.2 * 0.9 <= elapsed < 10


def test_async_rate_limit_lets_calls_through_no_faster_than_the_slot_decay(client):
    client.create_concurrency_limit("api", 1, slot_decay_per_second=20)

    async def calls() -> float:
        started = time.perf_counter()
        for _ in range(4):
            await aconcurrency.rate_limit("api", timeout_seconds=10)
        return time.perf_counter() - started

    assert 0.15 * 0.9 <= asyncio.run(calls()) < 10


def test_rate_limit_on_a_limit_without_slot_decay_says_how_to_add_it(client):
    client.create_concurrency_limit("no-decay", 2)
    with pytest.raises(ConcurrencySlotError, match="--slot-decay-per-second"):
        rate_limit("no-decay")


def test_occupying_more_slots_than_the_limit_fails_at_once(client):
    client.create_concurrency_limit("small", 2)
    started = time.monotonic()
    with pytest.raises(ConcurrencySlotError, match="its limit is 2"), concurrency("small", 3):
        pytest.fail("entered a block that needs more slots than the limit has")
    assert time.monotonic() - started < 5
    assert client.read_concurrency_limit("small").waiting == 0


def test_a_timeout_gives_up_holding_nothing(client):
    # Whether a timeout racing the broker's poll leaves a place in line: see the test below.
    client.create_concurrency_limit("one", 1)
    with concurrency("one"):
        gives_up = pytest.raises(ConcurrencySlotTimeout, match="Nothing is held")
        with gives_up, concurrency("one", timeout_seconds=0.2):
            pytest.fail("entered a block whose only slot is taken")
        during = client.read_concurrency_limit("one")
        assert (during.active_slots, len(during.holders)) == (1, 1)
    after = client.read_concurrency_limit("one")
    assert (after.active_slots, after.holders) == (0, [])
    with concurrency("one", timeout_seconds=30):
        assert client.read_concurrency_limit("one").active_slots == 1


def test_an_async_timeout_gives_up_holding_nothing(client):
    client.create_concurrency_limit("one", 1)

    async def try_twice() -> None:
        async with aconcurrency.concurrency("one"):
            with pytest.raises(ConcurrencySlotTimeout):
                async with aconcurrency.concurrency("one", timeout_seconds=0.2):
                    pytest.fail("entered a block whose only slot is taken")

    asyncio.run(try_twice())
    after = client.read_concurrency_limit("one")
    assert (after.active_slots, after.holders) == (0, [])


def test_a_timeout_during_the_brokers_poll_leaves_no_place_in_line(
    client, monkeypatch, wait_until
):
    client.create_concurrency_limit("one", 1)
    polling, gave_up, polled = threading.Event(), threading.Event(), threading.Event()
    acquire = client.acquire_concurrency_slots

    def poll_held_until_the_waiter_gives_up(requests):
        if threading.current_thread().name != "anabranch-slot-broker":
            return acquire(requests)
        polling.set()
        gave_up.wait(20)
        try:
            return acquire(requests)
        finally:
            polled.set()

    # The store is real; only the broker's poll is held back to force the interleaving.
    monkeypatch.setattr(client, "acquire_concurrency_slots", poll_held_until_the_waiter_gives_up)
    with concurrency("one"):
        with pytest.raises(ConcurrencySlotTimeout), concurrency("one", timeout_seconds=1):
            pytest.fail("entered a block whose only slot is taken")
        assert polling.is_set()
        gave_up.set()
        assert polled.wait(20)
        wait_until(
            lambda: client.read_concurrency_limit("one").waiting == 0,
            timeout=5,
            what="the timed-out waiter's place in line to be given up",
        )


def test_non_strict_concurrency_warns_about_missing_limits_and_holds_the_others(client):
    client.create_concurrency_limit("real", 1)
    warns = pytest.warns(UserWarning, match=r"No active concurrency limit named \['imaginary'\]")
    with warns, concurrency(["real", "imaginary"], strict=False):
        assert client.read_concurrency_limit("real").active_slots == 1
    assert client.read_concurrency_limit("real").active_slots == 0


def test_a_missing_limit_is_an_error_that_says_how_to_create_it(client):
    hint = "anabranch concurrency-limit create nowhere LIMIT"
    with pytest.raises(UnknownConcurrencyLimit, match=hint) as raised, concurrency("nowhere"):
        pytest.fail("entered a block of a limit that does not exist")
    assert isinstance(raised.value, ObjectNotFound)

    async def enter() -> None:
        async with aconcurrency.concurrency("nowhere"):
            pytest.fail("entered a block of a limit that does not exist")

    with pytest.raises(UnknownConcurrencyLimit, match=hint):
        asyncio.run(enter())


def test_an_inactive_limit_does_not_limit(client):
    client.create_concurrency_limit("paused", 1)
    client.update_concurrency_limit("paused", active=False)
    both_inside = threading.Barrier(2, timeout=20)
    errors: list[BaseException] = []

    def caller() -> None:
        try:
            with concurrency("paused"):
                both_inside.wait()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert client.read_concurrency_limit("paused").active_slots == 0


def test_an_inactive_tag_limit_does_not_hold_back_tasks(client):
    client.create_concurrency_limit("paused", 1, active=False)
    both_running = threading.Barrier(2, timeout=20)

    @task(tags=["paused"])
    def tagged(i: int) -> int:
        both_running.wait()
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def parent() -> list[int]:
        return tagged.map(range(2)).result()

    assert parent() == [0, 1]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_flow_runs_the_limited_tasks_it_submits_without_waiting_on_them(client, wait_until):
    # Untagged tasks submitted this way all complete before the flow ends (its runner's
    # shutdown waits for every submitted item); tagged ones must too.
    client.create_concurrency_limit("serial", 1)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with concurrency("serial"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(20)

    @task(tags=["serial"])
    def tagged(i: int) -> int:
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def parent() -> None:
        for i in range(10):
            tagged.submit(i)
        release.set()  # every tagged run is waiting for its slot as the body returns

    try:
        parent()
        wait_until(
            lambda: {r.state.type for r in client.read_task_runs()} == {StateType.COMPLETED},
            timeout=5,
            what="the ten tagged tasks to complete",
        )
    finally:
        release.set()
        holder.join(30)
    (parent_run,) = client.read_flow_runs(flow_name="parent")
    assert max(r.end_time for r in client.read_task_runs()) <= parent_run.end_time
