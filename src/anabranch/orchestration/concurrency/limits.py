"""Concurrency limits themselves: create, read, update, reset and delete.

Changing or removing a limit never stops a holder: a reset or deleted limit's leases end, and
their holders find them gone at the next renewal (and say so in their run logs).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch._ids import new_id
from anabranch._validation import check_name
from anabranch.database.models import concurrency_lease, concurrency_lease_slot, concurrency_limit
from anabranch.exceptions import InvalidConcurrencyLimit
from anabranch.orchestration.concurrency import leases, waiters
from anabranch.orchestration.concurrency.admission import Limit, decayed, unknown_limit
from anabranch.schemas import ConcurrencyLimit, SlotHolder
from anabranch.schemas.concurrency import MAX_STORED_INT


def create_limit(
    conn: Connection,
    name: str,
    limit: int,
    *,
    active: bool = True,
    slot_decay_per_second: float | None = None,
    now: datetime,
) -> ConcurrencyLimit:
    """Create the limit, or, if it exists, set its size (and its decay when one is given)
    and nothing else: ``create`` is safe to repeat and never undoes an operator's update."""
    check_name(name, "concurrency limit", error=InvalidConcurrencyLimit, path_segment=False)
    _check_size(name, limit, slot_decay_per_second or 0.0)
    row = _limit_row(conn, name)
    if row is None:
        conn.execute(
            sa.insert(concurrency_limit).values(
                id=new_id(),
                name=name,
                limit=limit,
                active=active,
                slot_decay_per_second=slot_decay_per_second or 0.0,
                decaying_slots=0.0,
                decayed_at=None,
                created=now,
                updated=now,
            )
        )
    else:
        update_limit(conn, name, limit=limit, slot_decay_per_second=slot_decay_per_second, now=now)
    return read_limit(conn, name, now=now)


def update_limit(
    conn: Connection,
    name: str,
    *,
    limit: int | None = None,
    active: bool | None = None,
    slot_decay_per_second: float | None = None,
    now: datetime,
) -> ConcurrencyLimit:
    row = _existing(conn, name)
    values: dict[str, Any] = {"updated": now}
    if limit is not None:
        values["limit"] = limit
    if active is not None:
        values["active"] = active
    if slot_decay_per_second is not None:
        values["slot_decay_per_second"] = slot_decay_per_second
    _check_size(name, values.get("limit", row.limit), values.get("slot_decay_per_second", 0.0))
    conn.execute(
        sa.update(concurrency_limit).where(concurrency_limit.c.id == row.id).values(**values)
    )
    return read_limit(conn, name, now=now)


def delete_limit(conn: Connection, name: str) -> None:
    """Delete the limit; its holders keep running and simply hold nothing any more."""
    row = _existing(conn, name)
    leases.end_leases_on(conn, row.id)
    waiters.delete_waiters_on(conn, row.id)
    conn.execute(sa.delete(concurrency_limit).where(concurrency_limit.c.id == row.id))


def reset_limit(conn: Connection, name: str, *, now: datetime) -> ConcurrencyLimit:
    """Free every slot of the limit; the holders keep running and release nothing later."""
    row = _existing(conn, name)
    leases.end_leases_on(conn, row.id)
    conn.execute(
        sa.update(concurrency_limit)
        .where(concurrency_limit.c.id == row.id)
        .values(decaying_slots=0.0, decayed_at=now, updated=now)
    )
    return read_limit(conn, name, now=now)


def read_limit(conn: Connection, name: str, *, now: datetime) -> ConcurrencyLimit:
    """The limit with its live holders (unexpired leases) and slots in use."""
    row = _existing(conn, name)
    holders = [
        SlotHolder(
            lease_id=h.lease_id,
            holder=h.holder,
            run_id=h.run_id,
            occupy=h.occupy,
            since=h.created,
            expires_at=h.expires_at,
        )
        for h in conn.execute(
            sa.select(
                concurrency_lease_slot.c.lease_id,
                concurrency_lease_slot.c.occupy,
                concurrency_lease.c.holder,
                concurrency_lease.c.run_id,
                concurrency_lease.c.created,
                concurrency_lease.c.expires_at,
            )
            .join(concurrency_lease, concurrency_lease.c.id == concurrency_lease_slot.c.lease_id)
            .where(
                concurrency_lease_slot.c.limit_id == row.id,
                concurrency_lease.c.expires_at > now,
            )
            .order_by(concurrency_lease.c.created)
        )
    ]
    waiting = waiters.waiting_on(conn, row.id, now)
    in_use = sum(h.occupy for h in holders) + decayed(as_limit(row), now)
    return _limit_model(row, in_use, holders, waiting)


def read_limits(conn: Connection, *, now: datetime) -> list[ConcurrencyLimit]:
    """Every limit, by name, with slots in use (holders are listed by ``read_limit``)."""
    rows = conn.execute(sa.select(concurrency_limit).order_by(concurrency_limit.c.name)).all()
    used = leases.slots_in_use(conn, [r.id for r in rows], now)
    return [
        _limit_model(r, used.get(r.id, 0) + decayed(as_limit(r), now), [], 0) for r in rows
    ]


def limits_by_id(conn: Connection, limit_ids: Iterable[uuid.UUID]) -> list[Limit]:
    """The limits with these ids that exist, as admission reads them."""
    return [
        as_limit(row)
        for row in conn.execute(
            sa.select(concurrency_limit).where(concurrency_limit.c.id.in_(list(limit_ids)))
        )
    ]


def as_limit(row: Any) -> Limit:
    """A ``concurrency_limit`` row as admission reads it."""
    return Limit(
        row.id, row.name, row.limit, row.active, row.slot_decay_per_second,
        row.decaying_slots, row.decayed_at,
    )


def _check_size(name: str, limit: int, slot_decay_per_second: float) -> None:
    if limit < 0:
        raise InvalidConcurrencyLimit(
            f"Concurrency limit {name!r} needs a limit of 0 or more, got {limit}."
        )
    if limit > MAX_STORED_INT:
        raise InvalidConcurrencyLimit(
            f"Concurrency limit {name!r} can be at most {MAX_STORED_INT:,}, got {limit:,}."
        )
    if not 0 <= slot_decay_per_second < math.inf:
        raise InvalidConcurrencyLimit(
            f"slot_decay_per_second of {name!r} must be a finite number, 0 or more, got "
            f"{slot_decay_per_second}."
        )


def _limit_row(conn: Connection, name: str) -> Any:
    return conn.execute(
        sa.select(concurrency_limit).where(concurrency_limit.c.name == name)
    ).first()


def _existing(conn: Connection, name: str) -> Any:
    row = _limit_row(conn, name)
    if row is None:
        raise unknown_limit(name)
    return row


def _limit_model(
    row: Any, active_slots: float, holders: list[SlotHolder], waiting: int
) -> ConcurrencyLimit:
    return ConcurrencyLimit(
        id=row.id,
        name=row.name,
        limit=row.limit,
        active=row.active,
        slot_decay_per_second=row.slot_decay_per_second,
        active_slots=active_slots,
        holders=holders,
        waiting=waiting,
        created=row.created,
        updated=row.updated,
    )
