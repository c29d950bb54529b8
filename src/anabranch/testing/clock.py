"""A clock a test moves by hand, as Trio's ``MockClock``: no test waits a fixed time."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from datetime import datetime, timedelta, timezone
from types import TracebackType

from anabranch import _clock


class FakeClock(_clock.Clock):
    """Time that moves only when told to. Installed (``with FakeClock() as clock:``), it is
    the clock anabranch reads: ``monotonic()`` and ``now()`` stand still until
    ``clock.advance(seconds)``, and a sleep through the clock (a ``Backoff``'s wait, a
    task's retry delay) returns at once, having moved the time by its length; each such
    sleep is listed in ``clock.sleeps``.

    Deterministic: the time read is the start plus the advances and sleeps so far, nothing
    else (in every thread: a sleep in one moves the time for all). Waits on an event with a
    timeout and ``anabranch.testing.wait_until`` keep real time: they wait for other threads
    and processes, which do not run on this clock. It starts at the system clock's readings
    when made (``start`` gives ``now()`` another one), so times read before it still compare.
    """

    def __init__(self, start: datetime | None = None) -> None:
        _clock.require_aware(start, "start")
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._start = start or datetime.now(timezone.utc)
        self._moved = 0.0
        self.sleeps: list[float] = []
        self._installed = contextlib.ExitStack()

    def monotonic(self) -> float:
        with self._lock:
            return self._started + self._moved

    def now(self) -> datetime:
        with self._lock:
            return self._start + timedelta(seconds=self._moved)

    def advance(self, seconds: float) -> None:
        """Move the time ``seconds`` on (every deadline and back-off read after sees it)."""
        _check_forward(seconds, "advance")
        with self._lock:
            self._moved += seconds

    def sleep(self, seconds: float) -> None:
        """Return at once, with the time moved on by ``seconds``."""
        _check_forward(seconds, "sleep")
        with self._lock:
            self._moved += seconds
            self.sleeps.append(seconds)

    async def sleep_async(self, seconds: float) -> None:
        """As ``sleep``, and yield to the event loop once, as a real sleep would."""
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __enter__(self) -> FakeClock:
        self._installed.enter_context(_clock.installed(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._installed.close()


def _check_forward(seconds: float, what: str) -> None:
    if seconds < 0:
        raise ValueError(
            f"FakeClock.{what}({seconds:g}): time only moves forward; pass 0 or more seconds."
        )
