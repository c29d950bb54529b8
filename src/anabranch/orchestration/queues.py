"""Work queue rows, shared by work pools (which own their queues) and deployments (which
name a queue of their pool, created on first use)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch._ids import new_id
from anabranch._validation import check_name
from anabranch.database.models import work_queue

DEFAULT_QUEUE = "default"


def queue_row(conn: Connection, pool_name: str, name: str) -> Any:
    """The queue's row as a mapping, or None."""
    return (
        conn.execute(
            sa.select(work_queue).where(
                work_queue.c.work_pool_name == pool_name, work_queue.c.name == name
            )
        )
        .mappings()
        .first()
    )


def insert_queue(
    conn: Connection,
    pool_name: str,
    name: str,
    *,
    priority: int = 1,
    concurrency_limit: int | None = None,
    description: str | None = None,
    now: datetime,
) -> None:
    check_name(name, "work queue")
    conn.execute(
        sa.insert(work_queue).values(
            id=new_id(), work_pool_name=pool_name, name=name, priority=priority,
            concurrency_limit=concurrency_limit, paused=False, description=description,
            created=now, updated=now,
        )
    )
