"""Which state changes a run may make: the one rule every writer is held to."""

from __future__ import annotations

from anabranch.schemas import TERMINAL_TYPES, StateType


def refusal(current: StateType | None, proposed: StateType) -> str | None:
    """Why a run in ``current`` may not move to ``proposed``, or None when it may.

    A final run stays final: its result, error and end time are what users read, and a late
    snapshot from a process that lost track (a crashed run's straggling writer) must not
    bring it back. One exception: a Crashed run may still take the other final state its own
    process reports, however late it arrives. Crashed is often a conclusion drawn from
    silence (no heartbeat while a server was down, records still in a spool), and the
    process's own word on how the run ended is the truth. A run asked to cancel
    (Cancelling) may only become Cancelled: its process is being stopped, and the crash that
    termination causes, or a result that raced with it, must not hide that it was cancelled.
    """
    if current is None or current is proposed and proposed not in TERMINAL_TYPES:
        return None
    if current is StateType.CRASHED and proposed in TERMINAL_TYPES:
        return None
    if current in TERMINAL_TYPES:
        return (
            f"a run in a final state ({current.value}) can not move to {proposed.value}; "
            "final states are final"
        )
    if current is StateType.CANCELLING and proposed is not StateType.CANCELLED:
        return (
            "a run that is being cancelled (CANCELLING) can only become CANCELLED, not "
            f"{proposed.value}"
        )
    return None
