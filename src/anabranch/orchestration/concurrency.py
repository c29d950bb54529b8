"""Concurrency limits: the rules, once, as functions over a connection in a write transaction.

Slots are held by leases that expire unless renewed, so a holder that dies (SIGKILL, OOM,
lost machine) frees its slots when its lease runs out; every acquisition first reaps expired
leases and waiter tickets, so any process using the store frees them. Slots go out in
arrival order: a request does not take slots while an earlier live waiter wants any of the
same limits (unless another of that waiter's limits is full for it), so a waiter asking for
many slots is never starved by a stream of small ones.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch._ids import new_id
from anabranch._validation import check_name
from anabranch.database.models import (
    concurrency_lease,
    concurrency_lease_slot,
    concurrency_limit,
    concurrency_waiter,
)
from anabranch.database.types import UTCDateTime, sqlite_datetime_text
from anabranch.database.upserts import upsert_into
from anabranch.exceptions import InvalidConcurrencyLimit, ObjectNotFound
from anabranch.schemas import ConcurrencyLimit, SlotGrant, SlotHolder, SlotRequest
from anabranch.schemas.concurrency import MAX_STORED_INT, WAITER_TICKET_SECONDS

# How many of the earliest waiters on a limit an acquisition reads: the ones that go before
# the requests it answers. Reading the whole line on every attempt made waiting cost grow
# with the square of the waiters.
_EARLIEST_WAITERS = 64


def _missing(name: str) -> ObjectNotFound:
    return ObjectNotFound(
        f"No concurrency limit named {name!r}; create it with "
        f"`anabranch concurrency-limit create {name} LIMIT`."
    )


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
    row = _limit_row(conn, name)
    if row is None:
        raise _missing(name)
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


def delete_limit(conn: Connection, name: str) -> None:
    """Delete the limit; its holders keep running and simply hold nothing any more."""
    row = _limit_row(conn, name)
    if row is None:
        raise _missing(name)
    _forget_limit_slots(conn, row.id)
    conn.execute(sa.delete(concurrency_waiter).where(concurrency_waiter.c.limit_id == row.id))
    conn.execute(sa.delete(concurrency_limit).where(concurrency_limit.c.id == row.id))


def reset_limit(conn: Connection, name: str, *, now: datetime) -> ConcurrencyLimit:
    """Free every slot of the limit; the holders keep running and release nothing later."""
    row = _limit_row(conn, name)
    if row is None:
        raise _missing(name)
    _forget_limit_slots(conn, row.id)
    conn.execute(
        sa.update(concurrency_limit)
        .where(concurrency_limit.c.id == row.id)
        .values(decaying_slots=0.0, decayed_at=now, updated=now)
    )
    return read_limit(conn, name, now=now)


def _forget_limit_slots(conn: Connection, limit_id: uuid.UUID) -> None:
    """End every lease holding slots of the limit (all its slots, on any limit): its holder
    finds it gone at the next renewal and is told in its run logs."""
    leases = list(
        conn.execute(
            sa.select(concurrency_lease_slot.c.lease_id).where(
                concurrency_lease_slot.c.limit_id == limit_id
            )
        ).scalars()
    )
    if leases:
        conn.execute(
            sa.delete(concurrency_lease_slot).where(concurrency_lease_slot.c.lease_id.in_(leases))
        )
        conn.execute(sa.delete(concurrency_lease).where(concurrency_lease.c.id.in_(leases)))


def read_limit(conn: Connection, name: str, *, now: datetime) -> ConcurrencyLimit:
    """The limit with its live holders (unexpired leases) and slots in use."""
    row = _limit_row(conn, name)
    if row is None:
        raise _missing(name)
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
    waiting = conn.execute(
        sa.select(sa.func.count())
        .select_from(concurrency_waiter)
        .where(concurrency_waiter.c.limit_id == row.id, concurrency_waiter.c.expires_at > now)
    ).scalar_one()
    return _limit_model(row, sum(h.occupy for h in holders) + _decayed(row, now), holders, waiting)


def read_limits(conn: Connection, *, now: datetime) -> list[ConcurrencyLimit]:
    """Every limit, by name, with slots in use (holders are listed by ``read_limit``)."""
    rows = conn.execute(sa.select(concurrency_limit).order_by(concurrency_limit.c.name)).all()
    used = _slots_in_use(conn, [r.id for r in rows], now)
    return [_limit_model(r, used.get(r.id, 0) + _decayed(r, now), [], 0) for r in rows]


def _limit_model(row: Any, active_slots: float, holders: list[SlotHolder], waiting: int):
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


def acquire(
    conn: Connection, requests: Sequence[SlotRequest], *, now: datetime
) -> list[SlotGrant]:
    """Try each request in order, in one transaction: grant it whole, or leave its waiter
    ticket (keeping its place in line) and say what it waits for. A request answered
    before finds its lease again; a ``keep_place`` request only keeps its ticket.

    Expired leases and lapsed tickets are ignored here and deleted by ``reap``."""
    names = sorted({name for request in requests for name in request.names})
    rows = _lock_limits(conn, names, now)
    limits = {row.name: row for row in rows}
    used = {row.id: float(row.used) for row in rows}
    ids = [request.waiter_id for request in requests]
    granted = _granted_leases(conn, [r.waiter_id for r in requests if r.mode == "lease"], now)
    tries = [r for r in requests if not r.keep_place and r.waiter_id not in granted]
    waiting = [row.id for row in rows if row.waiting]
    # A request's own ticket is a waiter on one of its limits: no waiters, no tickets.
    waiters = []
    if waiting:
        waiters = (
            _live_waiters(conn, waiting, ids, max(r.since for r in tries), now)
            if tries
            else _own_tickets(conn, ids, now)
        )
    line = _Line(conn, rows, used, waiters, now)
    grants = []
    for request in requests:
        if request.waiter_id in granted:
            grants.append(granted[request.waiter_id])
        elif request.keep_place:
            grants.append(_keep_place(conn, request, limits, line, now))
        else:
            grants.append(_try(conn, request, limits, used, line, now))
    return grants


def _keep_place(
    conn: Connection, request: SlotRequest, limits: dict[str, Any], line: _Line, now: datetime
) -> SlotGrant:
    rows = [limits[name] for name in request.names if name in limits and limits[name].active]
    _keep_waiting(conn, request, rows, line, now)
    return SlotGrant(granted=False, limited_by=[row.name for row in rows])


def _granted_leases(
    conn: Connection, waiter_ids: Sequence[uuid.UUID], now: datetime
) -> dict[uuid.UUID, SlotGrant]:
    """The live leases some of these requests were granted already (a lease takes its
    waiter's id): a request resent after its answer was lost gets the same answer."""
    if not waiter_ids:
        return {}
    if conn.dialect.name == "sqlite":
        sql = _SQLITE_GRANTED_LEASES.format(ids=", ".join("?" * len(waiter_ids)))
        found = [
            (uuid.UUID(hex=lease_id), name)
            for lease_id, name in conn.exec_driver_sql(
                sql, (sqlite_datetime_text(now), *(i.hex for i in waiter_ids))
            )
        ]
    else:
        found = list(conn.execute(_GRANTED_LEASES, {"ids": list(waiter_ids), "now": now}))
    names: dict[uuid.UUID, list[str]] = {}
    for lease_id, name in found:
        names.setdefault(lease_id, []).append(name)
    return {
        lease_id: SlotGrant(granted=True, lease_id=lease_id, limited_by=sorted(held))
        for lease_id, held in names.items()
    }


class _Line:
    """The waiters on the limits of one acquisition, every ticket of each, and which of
    them could not take their slots now anyway.

    An earlier waiter keeps its place on every limit it asked for, except while another of
    its limits is full for it: then nothing taken meanwhile delays it. Without that
    exception, a holder of ``a`` asking for a free ``b`` would queue behind a waiter for
    ``a`` and ``b``, which waits for the holder to release ``a``: a deadlock.
    """

    def __init__(
        self,
        conn: Connection,
        rows: Sequence[Any],
        used: dict[uuid.UUID, float],
        waiters: list[Any],
        now: datetime,
    ) -> None:
        self.waiters = waiters
        self._now = now
        self._rows = {row.id: row for row in rows}
        self._used = used
        self._tickets: dict[uuid.UUID, list[Any]] = {}
        for ticket in waiters:
            self._tickets.setdefault(ticket.id, []).append(ticket)
        elsewhere = {t.limit_id for t in waiters} - self._rows.keys()
        if elsewhere:
            self._rows.update(
                (row.id, row)
                for row in conn.execute(
                    sa.select(concurrency_limit).where(concurrency_limit.c.id.in_(elsewhere))
                )
            )
            self._elsewhere_used = _slots_in_use(conn, list(elsewhere), now)
        else:
            self._elsewhere_used = {}

    def ahead_of(self, request: SlotRequest, limit_ids: set[uuid.UUID]) -> list[Any]:
        """The earlier waiters' tickets that hold ``request`` back."""
        return [
            w for w in self.waiters
            if w.limit_id in limit_ids and w.id != request.waiter_id
            and w.since < request.since and not self._stuck_elsewhere(w)
        ]

    def tickets_of(self, waiter_id: uuid.UUID) -> list[Any]:
        return self._tickets.get(waiter_id, [])

    def add(self, ticket: Any) -> None:
        self.waiters.append(ticket)
        self._tickets.setdefault(ticket.id, []).append(ticket)

    def leave(self, waiter_id: uuid.UUID) -> bool:
        """Forget a waiter's tickets; whether it had any."""
        if self._tickets.pop(waiter_id, None) is None:
            return False
        self.waiters[:] = [w for w in self.waiters if w.id != waiter_id]
        return True

    def _stuck_elsewhere(self, ticket: Any) -> bool:
        for other in self._tickets.get(ticket.id, ()):
            row = self._rows.get(other.limit_id)
            if other.limit_id == ticket.limit_id or row is None or not row.active:
                continue
            used = self._used if other.limit_id in self._used else self._elsewhere_used
            if _in_use(row, used, self._now) + other.occupy > row.limit:
                return True
        return False


def _try(
    conn: Connection,
    request: SlotRequest,
    limits: dict[str, Any],
    used: dict[uuid.UUID, float],
    line: _Line,
    now: datetime,
) -> SlotGrant:
    missing = [name for name in request.names if name not in limits]
    if missing and request.strict:
        return SlotGrant(granted=False, error=str(_missing(missing[0])))
    rows = [limits[name] for name in request.names if name in limits and limits[name].active]
    if not rows:
        return SlotGrant(granted=True)
    for row in rows:
        if request.occupy > row.limit:
            return SlotGrant(
                granted=False,
                error=f"{request.occupy} slots of concurrency limit {row.name!r} can never be "
                f"granted: its limit is {row.limit}. Occupy fewer or raise the limit.",
            )
        if request.mode == "rate" and row.slot_decay_per_second <= 0:
            return SlotGrant(
                granted=False,
                error=f"rate_limit() needs slot decay, and concurrency limit {row.name!r} has "
                f"none; set it with `anabranch concurrency-limit update {row.name} "
                "--slot-decay-per-second RATE`.",
            )
    ids = {row.id for row in rows}
    ahead = line.ahead_of(request, ids)
    full = [row for row in rows if _in_use(row, used, now) + request.occupy > row.limit]
    if ahead or full:
        _keep_waiting(conn, request, rows, line, now)
        blocker = full[0] if full else next(r for r in rows if r.id == ahead[0].limit_id)
        return SlotGrant(
            granted=False,
            limited_by=[row.name for row in rows],
            waiting_for=f"concurrency limit {blocker.name!r} "
            f"({_in_use(blocker, used, now):g}/{blocker.limit} slots in use"
            + (f", {len({w.id for w in ahead})} earlier waiter(s)" if ahead else "")
            + ")",
        )
    if line.leave(request.waiter_id):
        withdraw(conn, request.waiter_id)
    if request.mode == "rate":
        for row in rows:
            _add_decaying(conn, row, request.occupy, now)
            used[row.id] = used.get(row.id, 0) + request.occupy
        return SlotGrant(granted=True, limited_by=[row.name for row in rows])
    lease_id = request.waiter_id
    _insert_lease(conn, lease_id, request, [row.id for row in rows], now)
    for row in rows:
        used[row.id] = used.get(row.id, 0) + request.occupy
    return SlotGrant(granted=True, lease_id=lease_id, limited_by=[row.name for row in rows])


def _in_use(row: Any, used: dict[uuid.UUID, float], now: datetime) -> float:
    return used.get(row.id, 0) + _decayed(row, now)


def _decayed(row: Any, now: datetime) -> float:
    """Rate-limit slots still occupied: they drain at ``slot_decay_per_second``."""
    if not row.decaying_slots or row.decayed_at is None:
        return 0.0
    elapsed = (now - row.decayed_at).total_seconds()
    return max(0.0, row.decaying_slots - elapsed * row.slot_decay_per_second)


def _add_decaying(conn: Connection, row: Any, occupy: int, now: datetime) -> None:
    conn.execute(
        sa.update(concurrency_limit)
        .where(concurrency_limit.c.id == row.id)
        .values(decaying_slots=_decayed(row, now) + occupy, decayed_at=now)
    )


def _keep_waiting(
    conn: Connection, request: SlotRequest, rows: Iterable[Any], line: _Line, now: datetime
) -> None:
    """Leave (or refresh) the request's tickets, so later requests queue behind it."""
    expires = now + timedelta(seconds=WAITER_TICKET_SECONDS)
    fresh_until = now + timedelta(seconds=WAITER_TICKET_SECONDS / 2)
    mine = {w.limit_id: w.expires_at for w in line.tickets_of(request.waiter_id)}
    for row in rows:
        if row.id in mine:
            if mine[row.id] > fresh_until:
                continue
            conn.execute(
                sa.update(concurrency_waiter)
                .where(
                    concurrency_waiter.c.id == request.waiter_id,
                    concurrency_waiter.c.limit_id == row.id,
                )
                .values(expires_at=expires)
            )
            continue
        # An upsert: a ticket of this waiter that lapsed (its process stalled) may still be
        # in the table until it is reaped; it is this waiter's place again.
        insert = upsert_into(conn.dialect.name, concurrency_waiter).values(
            id=request.waiter_id,
            limit_id=row.id,
            occupy=request.occupy,
            since=request.since,
            expires_at=expires,
        )
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=["id", "limit_id"], set_={"expires_at": expires}
            )
        )
        line.add(_Ticket(request.waiter_id, row.id, request.since, expires, request.occupy))



class _Ticket(NamedTuple):
    """A ticket written in this transaction, shaped like a row of concurrency_waiter."""

    id: uuid.UUID
    limit_id: uuid.UUID
    since: datetime
    expires_at: datetime
    occupy: int


def withdraw(conn: Connection, waiter_id: uuid.UUID) -> None:
    """A waiter gave up (timeout, cancellation): its place in line is freed."""
    conn.execute(sa.delete(concurrency_waiter).where(concurrency_waiter.c.id == waiter_id))


def release(conn: Connection, lease_id: uuid.UUID) -> bool:
    """Free the lease's slots; False if it was already gone (expired, reset, deleted)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_SQLITE_DELETE_LEASE_SLOTS, (lease_id.hex,))
        return conn.exec_driver_sql(_SQLITE_DELETE_LEASE, (lease_id.hex,)).rowcount > 0
    conn.execute(_DELETE_LEASE_SLOTS, {"lease_id": lease_id})
    return conn.execute(_DELETE_LEASE, {"lease_id": lease_id}).rowcount > 0


def _insert_lease(
    conn: Connection,
    lease_id: uuid.UUID,
    request: SlotRequest,
    limit_ids: list[uuid.UUID],
    now: datetime,
) -> None:
    expires_at = now + timedelta(seconds=request.lease_seconds)
    if conn.dialect.name == "sqlite":
        # Rows in SQLAlchemy's own SQLite storage form (uuid hex, UTC text), sent straight
        # to the driver: acquire+release is a hot path and SQLAlchemy's per-statement
        # work costs more than SQLite's.
        run_id = request.run_id.hex if request.run_id else None
        conn.exec_driver_sql(
            _SQLITE_INSERT_LEASE,
            (lease_id.hex, request.holder, run_id, sqlite_datetime_text(expires_at),
             sqlite_datetime_text(now)),
        )
        conn.exec_driver_sql(
            _SQLITE_INSERT_LEASE_SLOT,
            [(lease_id.hex, limit_id.hex, request.occupy) for limit_id in limit_ids],
        )
        return
    conn.execute(
        _INSERT_LEASE,
        {
            "id": lease_id,
            "holder": request.holder,
            "run_id": request.run_id,
            "expires_at": expires_at,
            "created": now,
        },
    )
    conn.execute(
        _INSERT_LEASE_SLOT,
        [{"lease_id": lease_id, "limit_id": i, "occupy": request.occupy} for i in limit_ids],
    )


def renew(
    conn: Connection, lease_ids: Sequence[uuid.UUID], *, seconds: float, now: datetime
) -> list[uuid.UUID]:
    """Extend live leases; returns the ids that were no longer held (lost)."""
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
    """Delete expired leases and lapsed waiter tickets; returns how many leases went.

    Expired rows already count for nothing (every query filters on expiry), so this only
    keeps the tables small; any process using the store may run it."""
    expired = list(
        conn.execute(
            sa.select(concurrency_lease.c.id).where(concurrency_lease.c.expires_at <= now)
        ).scalars()
    )
    if expired:
        conn.execute(
            sa.delete(concurrency_lease_slot).where(
                concurrency_lease_slot.c.lease_id.in_(expired)
            )
        )
        conn.execute(sa.delete(concurrency_lease).where(concurrency_lease.c.id.in_(expired)))
    conn.execute(sa.delete(concurrency_waiter).where(concurrency_waiter.c.expires_at <= now))
    return len(expired)


def _limit_row(conn: Connection, name: str) -> Any:
    return conn.execute(
        sa.select(concurrency_limit).where(concurrency_limit.c.name == name)
    ).first()


def _limits_with_usage_query() -> sa.Select:
    slot, lease, waiter, limit = (
        concurrency_lease_slot, concurrency_lease, concurrency_waiter, concurrency_limit
    )
    now = sa.bindparam("now", type_=concurrency_lease.c.expires_at.type)
    used = (
        sa.select(sa.func.coalesce(sa.func.sum(slot.c.occupy), 0))
        .join(lease, lease.c.id == slot.c.lease_id)
        .where(slot.c.limit_id == limit.c.id, lease.c.expires_at > now)
        .scalar_subquery()
    )
    waiting = (
        sa.select(sa.func.count())
        .select_from(waiter)
        .where(waiter.c.limit_id == limit.c.id, waiter.c.expires_at > now)
        .scalar_subquery()
    )
    query = (
        sa.select(limit, used.label("used"), waiting.label("waiting"))
        .where(limit.c.name.in_(sa.bindparam("names", expanding=True)))
        .order_by(limit.c.name)
    )
    return query


# Built once: constructing a Core statement costs more than SQLite takes to run it.
_LIMITS_WITH_USAGE = _limits_with_usage_query()
_LOCK_LIMITS = (
    sa.select(concurrency_limit.c.id)
    .where(concurrency_limit.c.name.in_(sa.bindparam("names", expanding=True)))
    .order_by(concurrency_limit.c.name)
    .with_for_update()
)
_GRANTED_LEASES = (
    sa.select(concurrency_lease_slot.c.lease_id, concurrency_limit.c.name)
    .join(concurrency_lease, concurrency_lease.c.id == concurrency_lease_slot.c.lease_id)
    .join(concurrency_limit, concurrency_limit.c.id == concurrency_lease_slot.c.limit_id)
    .where(
        concurrency_lease_slot.c.lease_id.in_(sa.bindparam("ids", expanding=True)),
        concurrency_lease.c.expires_at > sa.bindparam("now", type_=UTCDateTime()),
    )
)
_SQLITE_GRANTED_LEASES = (
    "SELECT s.lease_id, l.name FROM concurrency_lease_slot AS s "
    "JOIN concurrency_lease AS e ON e.id = s.lease_id "
    "JOIN concurrency_limit AS l ON l.id = s.limit_id "
    "WHERE e.expires_at > ? AND s.lease_id IN ({ids})"
)
_SQLITE_INSERT_LEASE = (
    "INSERT INTO concurrency_lease (id, holder, run_id, expires_at, created) "
    "VALUES (?, ?, ?, ?, ?)"
)
_SQLITE_INSERT_LEASE_SLOT = (
    "INSERT INTO concurrency_lease_slot (lease_id, limit_id, occupy) VALUES (?, ?, ?)"
)
_SQLITE_DELETE_LEASE_SLOTS = "DELETE FROM concurrency_lease_slot WHERE lease_id = ?"
_SQLITE_DELETE_LEASE = "DELETE FROM concurrency_lease WHERE id = ?"
_INSERT_LEASE = sa.insert(concurrency_lease)
_INSERT_LEASE_SLOT = sa.insert(concurrency_lease_slot)
_DELETE_LEASE_SLOTS = sa.delete(concurrency_lease_slot).where(
    concurrency_lease_slot.c.lease_id == sa.bindparam("lease_id")
)
_DELETE_LEASE = sa.delete(concurrency_lease).where(
    concurrency_lease.c.id == sa.bindparam("lease_id")
)


def _lock_limits(conn: Connection, names: Sequence[str], now: datetime) -> list[Any]:
    """The limits' rows with their slots in use and live waiter count; on PostgreSQL locked
    in name order first, so concurrent acquirers of overlapping sets queue instead of
    deadlocking (SQLite's write transaction covers it there)."""
    if not names:
        return []
    names = list(names)
    if conn.dialect.name == "sqlite":
        return _sqlite_limits_with_usage(conn, names, now)
    # Lock, then read in a second statement: under READ COMMITTED a statement reads the
    # snapshot taken when it began, so slots counted by the locking statement itself would
    # miss the leases the previous lock holder committed while it waited.
    conn.execute(_LOCK_LIMITS, {"names": names})
    return list(conn.execute(_LIMITS_WITH_USAGE, {"names": names, "now": now}))


class _LimitUsage(NamedTuple):
    """A limit row with its slots in use and live waiters, as ``_LIMITS_WITH_USAGE`` reads."""

    id: uuid.UUID
    name: str
    limit: int
    active: bool
    slot_decay_per_second: float
    decaying_slots: float
    decayed_at: datetime | None
    used: float
    waiting: int


def _sqlite_limits_with_usage(
    conn: Connection, names: list[str], now: datetime
) -> list[_LimitUsage]:
    """The same read as ``_LIMITS_WITH_USAGE``, sent straight to SQLite: it runs on every
    acquisition, and SQLAlchemy's handling of the statement costs more than SQLite's."""
    at = sqlite_datetime_text(now)
    sql = _SQLITE_LIMITS_WITH_USAGE.format(names=", ".join("?" * len(names)))
    rows = conn.exec_driver_sql(sql, (at, at, *names)).fetchall()
    return [
        _LimitUsage(
            uuid.UUID(hex=row[0]),
            row[1],
            row[2],
            bool(row[3]),
            row[4],
            row[5],
            datetime.fromisoformat(row[6]).replace(tzinfo=timezone.utc) if row[6] else None,
            float(row[7]),
            row[8],
        )
        for row in rows
    ]


_SQLITE_LIMITS_WITH_USAGE = """
SELECT l.id, l.name, l."limit", l.active, l.slot_decay_per_second, l.decaying_slots,
       l.decayed_at,
       (SELECT COALESCE(SUM(s.occupy), 0) FROM concurrency_lease_slot AS s
          JOIN concurrency_lease AS e ON e.id = s.lease_id
         WHERE s.limit_id = l.id AND e.expires_at > ?) AS used,
       (SELECT COUNT(*) FROM concurrency_waiter AS w
         WHERE w.limit_id = l.id AND w.expires_at > ?) AS waiting
  FROM concurrency_limit AS l
 WHERE l.name IN ({names})
 ORDER BY l.name
"""


def _slots_in_use(
    conn: Connection, limit_ids: Sequence[uuid.UUID], now: datetime
) -> dict[uuid.UUID, float]:
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


def _live_waiters(
    conn: Connection,
    limit_ids: Sequence[uuid.UUID],
    own: Sequence[uuid.UUID],
    latest: datetime,
    now: datetime,
) -> list[Any]:
    """Every live ticket of the earliest waiters on ``limit_ids`` (up to ``latest``, the
    newest request being tried) and of the requests' own waiters (``own``): the waiters
    that can go before the requests, with their other limits' tickets, and no more."""
    waiter = concurrency_waiter
    earliest = conn.execute(
        sa.select(waiter.c.id)
        .where(
            waiter.c.limit_id.in_(limit_ids),
            waiter.c.since <= latest,
            waiter.c.expires_at > now,
        )
        .order_by(waiter.c.since)
        .limit(_EARLIEST_WAITERS * len(limit_ids))
    ).scalars()
    return _own_tickets(conn, list({*earliest, *own}), now)


def _own_tickets(conn: Connection, waiter_ids: Sequence[uuid.UUID], now: datetime) -> list[Any]:
    """Every live ticket of these waiters."""
    if not waiter_ids:
        return []
    waiter = concurrency_waiter
    return list(
        conn.execute(
            sa.select(
                waiter.c.id, waiter.c.limit_id, waiter.c.since, waiter.c.expires_at,
                waiter.c.occupy,
            ).where(waiter.c.id.in_(waiter_ids), waiter.c.expires_at > now)
        )
    )
