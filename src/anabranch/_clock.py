"""The one clock every timestamp, deadline, back-off and sleep goes through, so tests can
control time: ``anabranch.testing.FakeClock`` installs a clock of its own here, and code
that reads ``monotonic()``/``now()`` or sleeps with ``sleep()`` follows it.

Waiting on an event with a timeout (a thread told to stop, a condition notified) stays a
plain ``Event.wait(timeout)``; only the deadlines and back-offs around it are read here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from datetime import datetime, timezone


class Clock:
    """The system clock. A clock for tests (``anabranch.testing.FakeClock``) overrides these
    four methods."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        return time.monotonic()

    def now(self) -> datetime:
        """The current time, timezone-aware in UTC."""
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM = Clock()
_current: Clock = SYSTEM


def current() -> Clock:
    """The clock installed now (the system clock unless a test installed another)."""
    return _current


@contextlib.contextmanager
def installed(clock: Clock) -> Iterator[Clock]:
    """Make ``clock`` the one every reading, deadline and sleep goes through, for the block;
    the clock installed before comes back after it."""
    global _current
    previous, _current = _current, clock
    try:
        yield clock
    finally:
        _current = previous


def monotonic() -> float:
    """Seconds on the current clock's monotonic scale (for intervals and deadlines)."""
    return _current.monotonic()


def now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return _current.now()


def sleep(seconds: float) -> None:
    """Sleep ``seconds`` on the current clock (a fake clock moves its time instead)."""
    _current.sleep(seconds)


async def sleep_async(seconds: float) -> None:
    """``sleep`` for a coroutine: awaited, so the event loop goes on meanwhile."""
    await _current.sleep_async(seconds)


def require_aware(value: datetime | None, name: str) -> datetime | None:
    """``value`` as it is; a ValueError naming ``name`` if it is naive, whose instant is
    unknown (reading it as UTC or as local time would each be a guess)."""
    if value is not None and value.utcoffset() is None:
        raise ValueError(
            f"{name}={value.isoformat()} has no time zone, so the instant it means is unknown; "
            "pass a timezone-aware datetime (datetime.now(timezone.utc), or one with tzinfo)."
        )
    return value


class Deadline:
    """The moment ``seconds`` from now on ``clock`` (the current clock by default); None
    seconds is a deadline that never comes, for a caller whose timeout is optional."""

    def __init__(self, seconds: float | None, *, clock: Clock | None = None) -> None:
        self._clock = clock or _current
        self.at = None if seconds is None else self._clock.monotonic() + seconds

    def remaining(self) -> float | None:
        """Seconds left (0.0 once it passed), or None for a deadline that never comes: what
        to hand a wait with an optional timeout."""
        if self.at is None:
            return None
        return max(0.0, self.at - self._clock.monotonic())

    def expired(self) -> bool:
        return self.at is not None and self._clock.monotonic() >= self.at


class Backoff:
    """Waits between attempts at something that may heal (a server restarting, a database
    connection cut): ``first`` seconds, doubling up to ``ceiling``, for at most ``budget``
    seconds from the first attempt (``math.inf``: for ever). The ceiling stays short so a
    store that comes back is noticed within seconds, not after a long back-off."""

    def __init__(
        self,
        budget: float,
        *,
        first: float = 0.1,
        ceiling: float = 2.0,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or _current
        self.started = self._clock.monotonic()
        self.deadline = self.started + budget
        self._delay = first
        self._ceiling = ceiling
        self.attempts = 1

    def elapsed(self) -> float:
        return self._clock.monotonic() - self.started

    def next_delay(self) -> float | None:
        """How long to wait before the next attempt (counted as made), or None once the
        budget is spent. For a caller that waits its own way (an event loop, an event)."""
        remaining = self.deadline - self._clock.monotonic()
        if remaining <= 0:
            return None
        delay = min(self._delay, remaining)
        self._delay = min(self._delay * 2, self._ceiling)
        self.attempts += 1
        return delay

    def wait(self) -> bool:
        """Sleep before the next attempt; False (without sleeping) once the budget is spent."""
        delay = self.next_delay()
        if delay is None:
            return False
        self._clock.sleep(delay)
        return True
