"""The one clock every timestamp and wait goes through, so tests can reason about time."""

from __future__ import annotations

import time
from datetime import datetime, timezone

monotonic = time.monotonic


def now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)
