"""Acquiring slots: read what admission needs, let ``admission.admit`` decide, write it.

One acquisition answers a batch of requests in one write transaction. It reads only the
waiters that can go before its requests (``waiters.EARLIEST_WAITERS``), so waiting costs
work in proportion to the waiters that can move, not to the length of the line.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch.database.models import (
    concurrency_lease,
    concurrency_lease_slot,
    concurrency_limit,
    concurrency_waiter,
)
from anabranch.orchestration import _sqlite_leases
from anabranch.orchestration.concurrency import leases, limits, waiters
from anabranch.orchestration.concurrency.admission import (
    Decay,
    GrantLease,
    KeepTicket,
    Limit,
    RefreshTicket,
    Ticket,
    Withdraw,
    Write,
    admit,
    check_requests,
)
from anabranch.schemas import SlotGrant, SlotRequest


def acquire(
    conn: Connection, requests: Sequence[SlotRequest], *, now: datetime
) -> list[SlotGrant]:
    """Try each request in order, in one transaction: grant it whole, or leave its waiter
    ticket (keeping its place in line) and say what it waits for. A request answered
    before finds its lease again; a ``keep_place`` request only keeps its ticket.

    Expired leases and lapsed tickets are ignored here and deleted by ``reap``."""
    check_requests(requests)
    names = sorted({name for request in requests for name in request.names})
    rows = _lock_limits(conn, names, now)
    known = [Limit(*row[:7]) for row in rows]
    used = {row[0]: float(row[7]) for row in rows}
    ids = [request.waiter_id for request in requests]
    granted = leases.granted_leases(
        conn, [r.waiter_id for r in requests if r.mode == "lease"], now
    )
    tries = [r for r in requests if not r.keep_place and r.waiter_id not in granted]
    waited_on = [row[0] for row in rows if row[8]]
    # A request's own ticket is a waiter on one of its limits: no waiters, no tickets.
    line: list[Ticket] = []
    if waited_on:
        line = (
            waiters.earliest_waiters(conn, waited_on, ids, max(r.since for r in tries), now)
            if tries
            else waiters.tickets_of(conn, ids, now)
        )
    # The waiters' other limits tell whether they are stuck there (then they hold no one
    # back here).
    elsewhere = {ticket.limit_id for ticket in line} - used.keys()
    if elsewhere:
        known += limits.limits_by_id(conn, elsewhere)
        used.update(leases.slots_in_use(conn, list(elsewhere), now))
    admission = admit(requests, known, used, line, granted, now)
    _write(conn, admission.writes, now)
    return admission.grants


def _write(conn: Connection, writes: Sequence[Write], now: datetime) -> None:
    for write in writes:
        if isinstance(write, GrantLease):
            leases.insert_lease(conn, write, now)
        elif isinstance(write, KeepTicket):
            waiters.keep_ticket(conn, write.ticket)
        elif isinstance(write, RefreshTicket):
            waiters.refresh_ticket(conn, write.waiter_id, write.limit_id, write.expires_at)
        elif isinstance(write, Withdraw):
            waiters.withdraw(conn, write.waiter_id)
        else:
            _decay(conn, write, now)


def _decay(conn: Connection, write: Decay, now: datetime) -> None:
    conn.execute(
        sa.update(concurrency_limit)
        .where(concurrency_limit.c.id == write.limit_id)
        .values(decaying_slots=write.decaying_slots, decayed_at=now)
    )


def _lock_limits(
    conn: Connection, names: Sequence[str], now: datetime
) -> Sequence[Sequence[Any]]:
    """The limits' rows with their slots in use and live waiter count (as in
    ``_sqlite_leases.LimitUsage``); on PostgreSQL locked in name order first, so concurrent
    acquirers of overlapping sets queue instead of deadlocking (SQLite's write transaction
    covers it there)."""
    if not names:
        return []
    names = list(names)
    if conn.dialect.name == "sqlite":
        return _sqlite_leases.limits_with_usage(conn, names, now)
    # Lock, then read in a second statement: under READ COMMITTED a statement reads the
    # snapshot taken when it began, so slots counted by the locking statement itself would
    # miss the leases the previous lock holder committed while it waited.
    conn.execute(_LOCK_LIMITS, {"names": names})
    return list(conn.execute(_LIMITS_WITH_USAGE, {"names": names, "now": now}))


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
    return (
        sa.select(
            limit.c.id, limit.c.name, limit.c.limit, limit.c.active,
            limit.c.slot_decay_per_second, limit.c.decaying_slots, limit.c.decayed_at,
            used.label("used"), waiting.label("waiting"),
        )
        .where(limit.c.name.in_(sa.bindparam("names", expanding=True)))
        .order_by(limit.c.name)
    )


# Built once: constructing a Core statement costs more than SQLite takes to run it.
_LIMITS_WITH_USAGE = _limits_with_usage_query()
_LOCK_LIMITS = (
    sa.select(concurrency_limit.c.id)
    .where(concurrency_limit.c.name.in_(sa.bindparam("names", expanding=True)))
    .order_by(concurrency_limit.c.name)
    .with_for_update()
)
