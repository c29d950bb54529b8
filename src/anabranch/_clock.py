"""The one clock every timestamp and wait goes through, so tests can reason about time."""

from __future__ import annotations

import time
from datetime import datetime, timezone

monotonic = time.monotonic


def now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def require_aware(value: datetime | None, name: str) -> datetime | None:
    """``value`` as it is; a ValueError naming ``name`` if it is naive, whose instant is
    unknown (reading it as UTC or as local time would each be a guess)."""
    if value is not None and value.utcoffset() is None:
        raise ValueError(
            f"{name}={value.isoformat()} has no time zone, so the instant it means is unknown; "
            "pass a timezone-aware datetime (datetime.now(timezone.utc), or one with tzinfo)."
        )
    return value


class Backoff:
    """Waits between attempts at something that may heal (a server restarting, a database
    connection cut): ``first`` seconds, doubling up to ``ceiling``, for at most ``budget``
    seconds from the first attempt. The ceiling stays short so a store that comes back is
    noticed within seconds, not after a long back-off."""

    def __init__(self, budget: float, *, first: float = 0.1, ceiling: float = 2.0) -> None:
        self.started = monotonic()
        self.deadline = self.started + budget
        self._delay = first
        self._ceiling = ceiling
        self.attempts = 1

    def elapsed(self) -> float:
        return monotonic() - self.started

    def wait(self) -> bool:
        """Sleep before the next attempt; False (without sleeping) once the budget is spent."""
        remaining = self.deadline - monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(self._delay, remaining))
        self._delay = min(self._delay * 2, self._ceiling)
        self.attempts += 1
        return True
