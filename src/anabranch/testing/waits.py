"""Waiting for something another thread or process does, with a deadline, never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    """Poll ``condition`` (with a short back-off) until it is true; AssertionError naming
    ``what`` once ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what or condition}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
