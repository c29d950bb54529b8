"""FakeClock: time that moves only when a test (or a sleep through the clock) moves it, so
deadlines, back-offs and retry delays are tested without waiting for them."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest

from anabranch import _clock, flow, task
from anabranch.testing import FakeClock, wait_until

START = datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_time_stands_still_until_advanced():
    with FakeClock(start=START) as clock:
        before = _clock.monotonic()
        assert _clock.now() == START
        assert _clock.monotonic() == before

        clock.advance(90)
        assert _clock.monotonic() == pytest.approx(before + 90)
        assert _clock.now() == START + timedelta(seconds=90)


def test_the_system_clock_comes_back_after_the_block_even_when_nested():
    with FakeClock() as outer:
        with FakeClock() as inner:
            assert _clock.current() is inner
        assert _clock.current() is outer
    assert _clock.current() is _clock.SYSTEM


def test_a_backoff_spends_its_budget_without_waiting_real_time():
    started = time.monotonic()
    with FakeClock() as clock:
        backoff = _clock.Backoff(5, first=0.1, ceiling=2.0)
        while backoff.wait():
            pass

        # Doubling up to the ceiling; the last wait is cut to what is left of the budget.
        assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 1.9])
        assert backoff.elapsed() == pytest.approx(5)
        assert backoff.attempts == 7
        assert backoff.next_delay() is None
    assert time.monotonic() - started < 1


def test_a_deadline_expires_when_the_clock_reaches_it():
    with FakeClock() as clock:
        deadline = _clock.Deadline(10)
        never = _clock.Deadline(None)
        clock.advance(4)
        assert (deadline.remaining(), deadline.expired()) == (pytest.approx(6), False)
        clock.advance(6)
        assert (deadline.remaining(), deadline.expired()) == (0.0, True)
        clock.advance(1_000_000)
        assert (never.remaining(), never.expired()) == (None, False)


def test_a_task_retry_delay_is_taken_on_the_fake_clock(client):
    calls = []

    @task(retries=2, retry_delay_seconds=30)
    def flaky() -> str:
        calls.append(_clock.monotonic())
        if len(calls) < 3:
            raise ConnectionError("not yet")
        return "done"

    @flow
    def pipeline() -> str:
        return flaky()

    with FakeClock() as clock:
        assert pipeline() == "done"
    assert clock.sleeps == [30, 30]
    assert [b - a for a, b in zip(calls, calls[1:], strict=False)] == pytest.approx([30, 30])


def test_an_async_task_retry_delay_is_taken_on_the_fake_clock(client):
    attempts = []

    @task(retries=1, retry_delay_seconds=600)
    async def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("not yet")
        return len(attempts)

    @flow
    async def pipeline() -> int:
        return await flaky()

    with FakeClock() as clock:
        assert asyncio.run(pipeline()) == 2
    assert clock.sleeps == [600]


def test_wait_until_polls_in_real_time_and_leaves_the_fake_clock_alone():
    polls = []
    with FakeClock() as clock:
        before = clock.monotonic()
        wait_until(lambda: polls.append(1) or len(polls) == 3, timeout=10)
        assert clock.sleeps == [] and clock.monotonic() == before


def test_time_only_moves_forward():
    clock = FakeClock()
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="only moves forward"):
        clock.sleep(-0.5)


def test_a_start_without_a_time_zone_is_refused():
    with pytest.raises(ValueError, match="start=.* has no time zone"):
        FakeClock(start=datetime(2030, 1, 1))
