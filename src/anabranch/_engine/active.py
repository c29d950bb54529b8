"""Every run of this process that is not final yet, so an interrupt can mark them Crashed
(or Cancelled, when the process stops because its root run was cancelled)."""

from __future__ import annotations

import uuid
from typing import Any

_active: dict[uuid.UUID, Any] = {}


def track(run_id: uuid.UUID, lifecycle: Any) -> None:
    _active[run_id] = lifecycle


def untrack(run_id: uuid.UUID) -> None:
    _active.pop(run_id, None)


def crash_all(reason: str) -> None:
    """Mark every unfinished run of this process Crashed (used on Ctrl-C / termination), or
    Cancelled when the process stops for a cancellation (see RunLifecycle.crash_with_message)."""
    for lifecycle in list(_active.values()):
        lifecycle.crash_with_message(reason)

