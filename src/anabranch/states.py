"""States a run moves through, and constructors named as users know them.

``Late`` and ``AwaitingRetry`` are SCHEDULED states, ``Retrying`` is a RUNNING state: the
type says what the run is doing, the name says why.
"""

from __future__ import annotations

from typing import Any

from anabranch.schemas._construct import construct
from anabranch.schemas.states import TERMINAL_TYPES, State, StateType


def _maker(state_type: StateType, default_name: str):
    def make(message: str | None = None, *, name: str | None = None, data: Any = None, **kw: Any):
        return construct(
            State, type=state_type, name=name or default_name, message=message, data=data, **kw
        )

    make.__name__ = default_name
    make.__doc__ = f"A {state_type.value} state named {default_name!r}."
    return make


Scheduled = _maker(StateType.SCHEDULED, "Scheduled")
Late = _maker(StateType.SCHEDULED, "Late")
AwaitingRetry = _maker(StateType.SCHEDULED, "AwaitingRetry")
Pending = _maker(StateType.PENDING, "Pending")
Running = _maker(StateType.RUNNING, "Running")
Retrying = _maker(StateType.RUNNING, "Retrying")
Completed = _maker(StateType.COMPLETED, "Completed")
Failed = _maker(StateType.FAILED, "Failed")
Crashed = _maker(StateType.CRASHED, "Crashed")
Cancelling = _maker(StateType.CANCELLING, "Cancelling")
Cancelled = _maker(StateType.CANCELLED, "Cancelled")
Paused = _maker(StateType.PAUSED, "Paused")

__all__ = [
    "TERMINAL_TYPES",
    "AwaitingRetry",
    "Cancelled",
    "Cancelling",
    "Completed",
    "Crashed",
    "Failed",
    "Late",
    "Paused",
    "Pending",
    "Retrying",
    "Running",
    "Scheduled",
    "State",
    "StateType",
]
