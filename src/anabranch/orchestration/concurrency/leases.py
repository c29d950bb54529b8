"""Lease storage: the rows that hold slots, until released, reaped, or ended with a limit.

A lease expires unless renewed, so a holder that dies (SIGKILL, OOM, lost machine) frees its
slots when its lease runs out. Expired rows already count for nothing (every read filters
on expiry); ``reap`` only keeps the tables small, and any process using the store may run
it. On SQLite the hot statements go straight to the driver (``_sqlite_leases``).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch.database.models import (
    concurrency_lease,
    concurrency_lease_slot,
    concurrency_limit,
    concurrency_waiter,
)
from anabranch.database.types import UTCDateTime
from anabranch.exceptions import ConcurrencySlotError
from anabranch.orchestration import _sqlite_leases
from anabranch.orchestration.concurrency.admission import GrantLease
from anabranch.schemas import SlotGrant

# Built once: constructing a Core statement costs more than SQLite takes to run it.
_GRANTED_LEASES = (
    sa.select(concurrency_lease_slot.c.lease_id, concurrency_limit.c.name)
    .join(concurrency_lease, concurrency_lease.c.id == concurrency_lease_slot.c.lease_id)
    .join(concurrency_limit, concurrency_limit.c.id == concurrency_lease_slot.c.limit_id)
    .where(
        concurrency_lease_slot.c.lease_id.in_(sa.bindparam("ids", expanding=True)),
        concurrency_lease.c.expires_at > sa.bindparam("now", type_=UTCDateTime()),
    )
)
_INSERT_LEASE = sa.insert(concurrency_lease)
_INSERT_LEASE_SLOT = sa.insert(concurrency_lease_slot)
_DELETE_LEASE_SLOTS = sa.delete(concurrency_lease_slot).where(
    concurrency_lease_slot.c.lease_id == sa.bindparam("lease_id")
)
_DELETE_LEASE = sa.delete(concurrency_lease).where(
    concurrency_lease.c.id == sa.bindparam("lease_id")
)


def granted_leases(
    conn: Connection, waiter_ids: Sequence[uuid.UUID], now: datetime
) -> dict[uuid.UUID, SlotGrant]:
    """The live leases some of these requests were granted already (a lease takes its
    waiter's id): a request resent after its answer was lost gets the same answer."""
    if not waiter_ids:
        return {}
    if conn.dialect.name == "sqlite":
        found = _sqlite_leases.granted_leases(conn, waiter_ids, now)
    else:
        found = list(conn.execute(_GRANTED_LEASES, {"ids": list(waiter_ids), "now": now}))
    names: dict[uuid.UUID, list[str]] = {}
    for lease_id, name in found:
        names.setdefault(lease_id, []).append(name)
    return {
        lease_id: SlotGrant(granted=True, lease_id=lease_id, limited_by=sorted(held))
        for lease_id, held in names.items()
    }


def insert_lease(conn: Connection, lease: GrantLease, now: datetime) -> None:
    request = lease.request
    if conn.dialect.name == "sqlite":
        _sqlite_leases.insert_lease(
            conn, request.waiter_id, request.holder, request.run_id, lease.limit_ids,
            request.occupy, lease.expires_at, now,
        )
        return
    conn.execute(
        _INSERT_LEASE,
        {
            "id": request.waiter_id,
            "holder": request.holder,
            "run_id": request.run_id,
            "expires_at": lease.expires_at,
            "created": now,
        },
    )
    conn.execute(
        _INSERT_LEASE_SLOT,
        [
            {"lease_id": request.waiter_id, "limit_id": limit_id, "occupy": request.occupy}
            for limit_id in lease.limit_ids
        ],
    )


def release(conn: Connection, lease_id: uuid.UUID) -> bool:
    """Free the lease's slots; False if it was already gone (expired, reset, deleted)."""
    if conn.dialect.name == "sqlite":
        return _sqlite_leases.release(conn, lease_id)
    conn.execute(_DELETE_LEASE_SLOTS, {"lease_id": lease_id})
    return conn.execute(_DELETE_LEASE, {"lease_id": lease_id}).rowcount > 0


def renew(
    conn: Connection, lease_ids: Sequence[uuid.UUID], *, seconds: float, now: datetime
) -> list[uuid.UUID]:
    """Extend live leases; returns the ids that were no longer held (lost)."""
    if not 0 <= seconds < math.inf:
        raise ConcurrencySlotError(
            f"Leases are renewed for 0 seconds or more, not {seconds:g}; 0 ends them now."
        )
    if not lease_ids:
        return []
    live = set(
        conn.execute(
            sa.select(concurrency_lease.c.id).where(
                concurrency_lease.c.id.in_(lease_ids), concurrency_lease.c.expires_at > now
            )
        ).scalars()
    )
    if live:
        conn.execute(
            sa.update(concurrency_lease)
            .where(concurrency_lease.c.id.in_(live))
            .values(expires_at=now + timedelta(seconds=seconds))
        )
    return [lease_id for lease_id in lease_ids if lease_id not in live]


def reap(conn: Connection, *, now: datetime) -> int:
    """Delete expired leases and lapsed waiter tickets; returns how many leases went."""
    expired = list(
        conn.execute(
            sa.select(concurrency_lease.c.id).where(concurrency_lease.c.expires_at <= now)
        ).scalars()
    )
    _delete(conn, expired)
    conn.execute(sa.delete(concurrency_waiter).where(concurrency_waiter.c.expires_at <= now))
    return len(expired)


def end_leases_on(conn: Connection, limit_id: uuid.UUID) -> None:
    """End every lease holding slots of the limit (all its slots, on any limit): its holder
    finds it gone at the next renewal and is told in its run logs."""
    _delete(
        conn,
        conn.execute(
            sa.select(concurrency_lease_slot.c.lease_id).where(
                concurrency_lease_slot.c.limit_id == limit_id
            )
        ).scalars(),
    )


def end_leases_of_runs(conn: Connection, run_ids: Sequence[uuid.UUID]) -> None:
    """End the leases taken for these runs: their process is gone, and so are its holders."""
    _delete(
        conn,
        conn.execute(
            sa.select(concurrency_lease.c.id).where(concurrency_lease.c.run_id.in_(run_ids))
        ).scalars(),
    )


def slots_in_use(
    conn: Connection, limit_ids: Sequence[uuid.UUID], now: datetime
) -> dict[uuid.UUID, float]:
    """Slots held by live leases, per limit id (a limit without any is left out)."""
    if not limit_ids:
        return {}
    rows = conn.execute(
        sa.select(concurrency_lease_slot.c.limit_id, sa.func.sum(concurrency_lease_slot.c.occupy))
        .join(concurrency_lease, concurrency_lease.c.id == concurrency_lease_slot.c.lease_id)
        .where(
            concurrency_lease_slot.c.limit_id.in_(limit_ids),
            concurrency_lease.c.expires_at > now,
        )
        .group_by(concurrency_lease_slot.c.limit_id)
    )
    return {limit_id: float(total) for limit_id, total in rows}


def _delete(conn: Connection, lease_ids: Iterable[uuid.UUID]) -> None:
    leases = list(lease_ids)
    if leases:
        conn.execute(
            sa.delete(concurrency_lease_slot).where(concurrency_lease_slot.c.lease_id.in_(leases))
        )
        conn.execute(sa.delete(concurrency_lease).where(concurrency_lease.c.id.in_(leases)))
