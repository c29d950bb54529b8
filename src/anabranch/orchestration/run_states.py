"""State changes made by the orchestration itself (dispatch, cancellation, crashes, late
runs), written straight to a run's row and its state history in one place."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch._ids import new_id
from anabranch.database.models import run_state
from anabranch.schemas import TERMINAL_TYPES, StateType


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
    """Move one run to a new state if it is in one of ``only_from`` (any state when None)
    and matches the ``where`` conditions; True if it moved. Extra ``columns`` are set on
    the row in the same statement."""
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
    query = sa.update(table).where(table.c.id == run_id, *where)
    if only_from is not None:
        query = query.where(table.c.state_type.in_([t.value for t in only_from]))
    if not conn.execute(query.values(values)).rowcount:
        return False
    conn.execute(
        sa.insert(run_state).values(
            id=state_id, run_id=run_id, type=type.value, name=name, message=message,
            timestamp=now, result_ref=None,
        )
    )
    return True
