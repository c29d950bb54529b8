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
