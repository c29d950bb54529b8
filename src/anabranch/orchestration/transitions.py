"""Which state changes a run may make, and the one place the orchestration makes them.

``refusal`` is the rule every writer is held to. The batch writers carry it into SQL
(``_batch_rules``); the orchestration's own writes (dispatch, requeues, cancellation,
zombies, late runs, deleted deployments) go through ``set_state``, which applies it in the
WHERE of its UPDATE, so the row's state at the moment of writing is the one judged: no read
first, no race with another writer.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch._ids import new_id
from anabranch.database.models import run_state
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


def lost_process_end(current: StateType | None) -> StateType:
    """The final state of an unfinished run whose process is gone without saying how it
    ended: Crashed, or Cancelled for a run being cancelled (the only state ``refusal``
    lets it take; its process is stopped, as asked)."""
    return StateType.CANCELLED if current is StateType.CANCELLING else StateType.CRASHED


def set_state(
    conn: Connection,
    table: sa.Table,
    run_id: uuid.UUID,
    type: StateType,
    name: str,
    message: str | None,
    *,
    now: datetime,
    only_from: Collection[StateType] | None = None,
    where: Collection[Any] = (),
    **columns: Any,
) -> bool:
    """Move one run to a new state, if ``refusal`` allows it from the run's current state,
    the run is in one of ``only_from`` (when given: a caller's narrower condition) and it
    matches the ``where`` conditions; True if it moved. Extra ``columns`` are set on the row
    in the same statement, and the new state is added to the run's history."""
    allowed = _may_become(type)
    if only_from is None:
        guard = sa.or_(table.c.state_type.is_(None), table.c.state_type.in_(allowed))
    else:
        wanted = {t.value for t in only_from}
        guard = table.c.state_type.in_([value for value in allowed if value in wanted])
    state_id = new_id()
    values: dict[str, Any] = {
        "state_id": state_id,
        "state_type": type.value,
        "state_name": name,
        "state_message": message,
        "state_timestamp": now,
        "updated": now,
        **columns,
    }
    if type in TERMINAL_TYPES:
        values["end_time"] = now
    query = sa.update(table).where(table.c.id == run_id, guard, *where).values(values)
    if not conn.execute(query).rowcount:
        return False
    conn.execute(
        sa.insert(run_state).values(
            id=state_id, run_id=run_id, type=type.value, name=name, message=message,
            timestamp=now, result_ref=None,
        )
    )
    return True


@functools.cache
def _may_become(proposed: StateType) -> tuple[str, ...]:
    """The state types (as stored) from which ``refusal`` lets a run move to ``proposed``."""
    return tuple(current.value for current in StateType if refusal(current, proposed) is None)
