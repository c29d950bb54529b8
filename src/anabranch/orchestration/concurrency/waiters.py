"""Waiter tickets: a waiting request's place in line on each of its limits.

A ticket lapses unless its waiter asks again (``WAITER_TICKET_SECONDS``), so a waiter whose
process died stops holding others back; lapsed tickets are ignored by every read here and
deleted by ``leases.reap``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch.database.models import concurrency_waiter
from anabranch.database.upserts import upsert_into
from anabranch.orchestration.concurrency.admission import Ticket

# How many of the earliest waiters on a limit an acquisition reads: the ones that go before
# the requests it answers. Reading the whole line on every attempt made waiting cost grow
# with the square of the waiters.
EARLIEST_WAITERS = 64

_waiter = concurrency_waiter


def earliest_waiters(
    conn: Connection,
    limit_ids: Sequence[uuid.UUID],
    own: Sequence[uuid.UUID],
    latest: datetime,
    now: datetime,
) -> list[Ticket]:
    """Every live ticket of the earliest waiters on ``limit_ids`` (up to ``latest``, the
    newest request being tried) and of the requests' own waiters (``own``): the waiters
    that can go before the requests, with their other limits' tickets, and no more."""
    earliest = conn.execute(
        sa.select(_waiter.c.id)
        .where(
            _waiter.c.limit_id.in_(limit_ids),
            _waiter.c.since <= latest,
            _waiter.c.expires_at > now,
        )
        .order_by(_waiter.c.since)
        .limit(EARLIEST_WAITERS * len(limit_ids))
    ).scalars()
    return tickets_of(conn, list({*earliest, *own}), now)


def tickets_of(conn: Connection, waiter_ids: Sequence[uuid.UUID], now: datetime) -> list[Ticket]:
    """Every live ticket of these waiters."""
    if not waiter_ids:
        return []
    rows = conn.execute(
        sa.select(
            _waiter.c.id, _waiter.c.limit_id, _waiter.c.since, _waiter.c.expires_at,
            _waiter.c.occupy,
        ).where(_waiter.c.id.in_(waiter_ids), _waiter.c.expires_at > now)
    )
    return [Ticket(*row) for row in rows]


def waiting_on(conn: Connection, limit_id: uuid.UUID, now: datetime) -> int:
    """How many live waiters the limit has."""
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(_waiter)
            .where(_waiter.c.limit_id == limit_id, _waiter.c.expires_at > now)
        ).scalar_one()
    )


def keep_ticket(conn: Connection, ticket: Ticket) -> None:
    # An upsert: a ticket of this waiter that lapsed (its process stalled) may still be in
    # the table until it is reaped; it is this waiter's place again.
    insert = upsert_into(conn.dialect.name, _waiter).values(
        id=ticket.id,
        limit_id=ticket.limit_id,
        occupy=ticket.occupy,
        since=ticket.since,
        expires_at=ticket.expires_at,
    )
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["id", "limit_id"], set_={"expires_at": ticket.expires_at}
        )
    )


def refresh_ticket(
    conn: Connection, waiter_id: uuid.UUID, limit_id: uuid.UUID, expires_at: datetime
) -> None:
    conn.execute(
        sa.update(_waiter)
        .where(_waiter.c.id == waiter_id, _waiter.c.limit_id == limit_id)
        .values(expires_at=expires_at)
    )


def withdraw(conn: Connection, waiter_id: uuid.UUID) -> None:
    """A waiter gave up (timeout, cancellation) or got its slots: its place in line is
    freed."""
    conn.execute(sa.delete(_waiter).where(_waiter.c.id == waiter_id))


def delete_waiters_on(conn: Connection, limit_id: uuid.UUID) -> None:
    """Every ticket on the limit goes (it is being deleted)."""
    conn.execute(sa.delete(_waiter).where(_waiter.c.limit_id == limit_id))
