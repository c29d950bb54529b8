"""The SQLite fast path of concurrency slots: statements sent straight to the driver.

An acquisition and a release are each a write transaction of a few statements, and on
SQLite SQLAlchemy's per-statement work (compiling, bind and result processing) costs more
than SQLite's own. The statements here are those of the SQLAlchemy path in
``concurrency.leases`` and ``concurrency.acquisition``, with the values in SQLAlchemy's own
SQLite storage form, as ``_sqlite_batches`` describes (uuid hex, UTC text), so either path
reads what the other wrote.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timezone

from sqlalchemy.engine import Connection

from anabranch.database.types import sqlite_datetime_text

# A limit's row with its slots in use and live waiters: (id, name, limit, active,
# slot_decay_per_second, decaying_slots, decayed_at, used, waiting).
LimitUsage = tuple[uuid.UUID, str, int, bool, float, float, datetime | None, float, int]

_LIMITS_WITH_USAGE = """
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
_GRANTED_LEASES = (
    "SELECT s.lease_id, l.name FROM concurrency_lease_slot AS s "
    "JOIN concurrency_lease AS e ON e.id = s.lease_id "
    "JOIN concurrency_limit AS l ON l.id = s.limit_id "
    "WHERE e.expires_at > ? AND s.lease_id IN ({ids})"
)
_INSERT_LEASE = (
    "INSERT INTO concurrency_lease (id, holder, run_id, expires_at, created) "
    "VALUES (?, ?, ?, ?, ?)"
)
_INSERT_LEASE_SLOT = (
    "INSERT INTO concurrency_lease_slot (lease_id, limit_id, occupy) VALUES (?, ?, ?)"
)
_DELETE_LEASE_SLOTS = "DELETE FROM concurrency_lease_slot WHERE lease_id = ?"
_DELETE_LEASE = "DELETE FROM concurrency_lease WHERE id = ?"


def limits_with_usage(conn: Connection, names: Sequence[str], now: datetime) -> list[LimitUsage]:
    """The named limits' rows, by name, with their slots in use and live waiter count."""
    at = sqlite_datetime_text(now)
    sql = _LIMITS_WITH_USAGE.format(names=", ".join("?" * len(names)))
    return [
        (
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
        for row in conn.exec_driver_sql(sql, (at, at, *names)).fetchall()
    ]


def granted_leases(
    conn: Connection, lease_ids: Sequence[uuid.UUID], now: datetime
) -> list[tuple[uuid.UUID, str]]:
    """(lease id, limit name) for each limit a live lease among ``lease_ids`` holds."""
    sql = _GRANTED_LEASES.format(ids=", ".join("?" * len(lease_ids)))
    rows = conn.exec_driver_sql(sql, (sqlite_datetime_text(now), *(i.hex for i in lease_ids)))
    return [(uuid.UUID(hex=lease_id), name) for lease_id, name in rows]


def insert_lease(
    conn: Connection,
    lease_id: uuid.UUID,
    holder: str,
    run_id: uuid.UUID | None,
    limit_ids: Sequence[uuid.UUID],
    occupy: int,
    expires_at: datetime,
    now: datetime,
) -> None:
    conn.exec_driver_sql(
        _INSERT_LEASE,
        (lease_id.hex, holder, run_id.hex if run_id else None, sqlite_datetime_text(expires_at),
         sqlite_datetime_text(now)),
    )
    conn.exec_driver_sql(
        _INSERT_LEASE_SLOT, [(lease_id.hex, limit_id.hex, occupy) for limit_id in limit_ids]
    )


def release(conn: Connection, lease_id: uuid.UUID) -> bool:
    """Delete the lease and its slots; False if there was no such lease."""
    conn.exec_driver_sql(_DELETE_LEASE_SLOTS, (lease_id.hex,))
    return conn.exec_driver_sql(_DELETE_LEASE, (lease_id.hex,)).rowcount > 0
