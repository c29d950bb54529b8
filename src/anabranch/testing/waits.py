"""Waiting for something another thread or process does, with a deadline, never a bare sleep.

The deadline and back-off are ``_clock``'s, on the system clock even while a FakeClock is
installed: what is waited for runs in real time (another thread, another process), and a
poll that moved the fake time instead of waiting would give up before it could happen.
"""

from __future__ import annotations

from collections.abc import Callable

from anabranch import _clock


def wait_until(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    """Poll ``condition`` (with a short back-off) until it is true; AssertionError naming
    ``what`` once ``timeout`` seconds pass."""
    backoff = _clock.Backoff(timeout, first=0.005, ceiling=0.1, clock=_clock.SYSTEM)
    while not condition():
        if not backoff.wait():
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what or condition}")
