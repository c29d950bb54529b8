"""Work pools, their queues and their workers: creating, changing and reading them.

Handing runs to workers is ``dispatch``'s; the limits set here are the ones it holds runs
to, and the active runs read here are the ones it counts against them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch._ids import new_id
from anabranch._validation import check_name
from anabranch.database.models import flow_run, work_pool, work_queue
from anabranch.database.models import worker as worker_table
from anabranch.exceptions import InvalidWorkPool, ObjectNotFound
from anabranch.orchestration.events import emit
from anabranch.orchestration.queues import DEFAULT_QUEUE, insert_queue
from anabranch.orchestration.queues import queue_row as _queue_row
from anabranch.schemas import StateType
from anabranch.schemas.concurrency import MAX_STORED_INT
from anabranch.schemas.deployments import Worker, WorkPool, WorkQueue
from anabranch.schemas.events import RESOURCE_ID, RESOURCE_NAME, RESOURCE_ROLE
from anabranch.schemas.unset import UNSET

# A worker is online while it has polled within this many seconds.
WORKER_ONLINE_SECONDS = 30.0
# The states in which a run counts against its pool's, queue's and deployment's limits.
ACTIVE = (StateType.PENDING.value, StateType.RUNNING.value, StateType.CANCELLING.value)
_UNSET: Any = UNSET


def pool_missing(name: str) -> ObjectNotFound:
    return ObjectNotFound(
        f"No work pool named {name!r}; create it with `anabranch work-pool create {name}`."
    )


def create_work_pool(
    conn: Connection,
    name: str,
    *,
    type: str = "process",
    concurrency_limit: int | None = None,
    description: str | None = None,
    now: datetime,
) -> WorkPool:
    """Create the pool with its ``default`` queue; for an existing pool, set the limit (when
    given) and nothing else, so ``create`` is safe to repeat in set-up scripts."""
    check_name(name, "work pool")
    if type != "process":
        raise InvalidWorkPool(f"Work pool type {type!r} is not supported; use 'process'.")
    _check_limit(concurrency_limit)
    if _pool_row(conn, name) is None:
        conn.execute(
            sa.insert(work_pool).values(
                id=new_id(), name=name, type=type, description=description,
                concurrency_limit=concurrency_limit, paused=False, created=now, updated=now,
            )
        )
        create_work_queue(conn, name, DEFAULT_QUEUE, now=now)
    elif concurrency_limit is not None:
        update_work_pool(conn, name, concurrency_limit=concurrency_limit, now=now)
    return read_work_pool(conn, name, now=now)


def read_work_pool(conn: Connection, name: str, *, now: datetime) -> WorkPool:
    row = _pool_row(conn, name)
    if row is None:
        raise pool_missing(name)
    return _work_pool(conn, row, now)


def read_work_pools(conn: Connection, *, now: datetime) -> list[WorkPool]:
    rows = conn.execute(sa.select(work_pool).order_by(work_pool.c.name)).mappings()
    return [_work_pool(conn, row, now) for row in rows]


def update_work_pool(
    conn: Connection,
    name: str,
    *,
    concurrency_limit: int | None = _UNSET,
    paused: bool | None = None,
    description: str | None = _UNSET,
    now: datetime,
) -> WorkPool:
    """Change a pool; ``concurrency_limit=None`` clears the limit."""
    values: dict[str, Any] = {"updated": now}
    if concurrency_limit is not _UNSET:
        _check_limit(concurrency_limit)
        values["concurrency_limit"] = concurrency_limit
    if paused is not None:
        values["paused"] = paused
    if description is not _UNSET:
        values["description"] = description
    if not conn.execute(
        sa.update(work_pool).where(work_pool.c.name == name).values(values)
    ).rowcount:
        raise pool_missing(name)
    return read_work_pool(conn, name, now=now)


def delete_work_pool(conn: Connection, name: str) -> None:
    """Delete a pool and its queues; runs and deployments that name it stay, unworked."""
    if not conn.execute(sa.delete(work_pool).where(work_pool.c.name == name)).rowcount:
        raise pool_missing(name)
    conn.execute(sa.delete(work_queue).where(work_queue.c.work_pool_name == name))
    conn.execute(sa.delete(worker_table).where(worker_table.c.work_pool_name == name))


def create_work_queue(
    conn: Connection,
    work_pool_name: str,
    name: str,
    *,
    priority: int | None = None,
    concurrency_limit: int | None = None,
    description: str | None = None,
    now: datetime,
) -> WorkQueue:
    """Create a queue in a pool; for an existing one, set what is given (safe to repeat)."""
    if _pool_row(conn, work_pool_name) is None:
        raise pool_missing(work_pool_name)
    _check_limit(concurrency_limit)
    if priority is not None and not 1 <= priority <= MAX_STORED_INT:
        raise InvalidWorkPool(
            f"Work queue priority must be 1 or more (1 first) and at most {MAX_STORED_INT:,}, "
            f"not {priority:,}."
        )
    existing = _queue_row(conn, work_pool_name, name)
    if existing is None:
        insert_queue(
            conn, work_pool_name, name, priority=priority or 1,
            concurrency_limit=concurrency_limit, description=description, now=now,
        )
    else:
        changes: dict[str, Any] = {"updated": now}
        if priority is not None:
            changes["priority"] = priority
        if concurrency_limit is not None:
            changes["concurrency_limit"] = concurrency_limit
        conn.execute(sa.update(work_queue).where(work_queue.c.id == existing["id"]).values(changes))
    return read_work_queue(conn, work_pool_name, name)


def read_work_queue(conn: Connection, work_pool_name: str, name: str) -> WorkQueue:
    row = _queue_row(conn, work_pool_name, name)
    if row is None:
        raise ObjectNotFound(
            f"No work queue {name!r} in work pool {work_pool_name!r}; create it with "
            f"`anabranch work-queue create {name} --pool {work_pool_name}`."
        )
    return _work_queue(row, active_counts(conn, flow_run.c.work_queue_name, work_pool_name))


def read_work_queues(conn: Connection, work_pool_name: str | None = None) -> list[WorkQueue]:
    query = sa.select(work_queue).order_by(
        work_queue.c.work_pool_name, work_queue.c.priority, work_queue.c.name
    )
    if work_pool_name is not None:
        if _pool_row(conn, work_pool_name) is None:
            raise pool_missing(work_pool_name)
        query = query.where(work_queue.c.work_pool_name == work_pool_name)
    rows = list(conn.execute(query).mappings())
    counts: dict[str, Counter[Any]] = {}
    for row in rows:
        pool = row["work_pool_name"]
        if pool not in counts:
            counts[pool] = active_counts(conn, flow_run.c.work_queue_name, pool)
    return [_work_queue(row, counts[row["work_pool_name"]]) for row in rows]


def update_work_queue(
    conn: Connection,
    work_pool_name: str,
    name: str,
    *,
    concurrency_limit: int | None = _UNSET,
    priority: int | None = None,
    paused: bool | None = None,
    now: datetime,
) -> WorkQueue:
    values: dict[str, Any] = {"updated": now}
    if concurrency_limit is not _UNSET:
        _check_limit(concurrency_limit)
        values["concurrency_limit"] = concurrency_limit
    if priority is not None:
        values["priority"] = priority
    if paused is not None:
        values["paused"] = paused
    row = _queue_row(conn, work_pool_name, name)
    if row is None:
        read_work_queue(conn, work_pool_name, name)  # raises the not-found error
    conn.execute(sa.update(work_queue).where(work_queue.c.id == row["id"]).values(values))
    return read_work_queue(conn, work_pool_name, name)


def delete_work_queue(conn: Connection, work_pool_name: str, name: str) -> None:
    if name == DEFAULT_QUEUE:
        raise InvalidWorkPool(
            f"The default queue of work pool {work_pool_name!r} can not be deleted; delete "
            "the pool."
        )
    read_work_queue(conn, work_pool_name, name)
    conn.execute(
        sa.delete(work_queue).where(
            work_queue.c.work_pool_name == work_pool_name, work_queue.c.name == name
        )
    )


def read_workers(conn: Connection, work_pool_name: str, *, now: datetime) -> list[Worker]:
    """The pool's workers, most recently heard from first."""
    rows = conn.execute(
        sa.select(worker_table)
        .where(worker_table.c.work_pool_name == work_pool_name)
        .order_by(worker_table.c.last_heartbeat.desc())
    ).mappings()
    online_since = now - timedelta(seconds=WORKER_ONLINE_SECONDS)
    return [
        Worker(
            name=row["name"],
            work_pool_name=row["work_pool_name"],
            limit=row["limit"],
            last_heartbeat=row["last_heartbeat"],
            online=row["last_heartbeat"] >= online_since,
        )
        for row in rows
    ]


def active_counts(
    conn: Connection,
    column: sa.Column,
    work_pool_name: str | None,
    among: Iterable[Any] | None = None,
) -> Counter[Any]:
    """How many runs are active, per value of ``column`` (pool, queue or deployment)."""
    query = (
        sa.select(column, sa.func.count())
        .where(flow_run.c.state_type.in_(ACTIVE))
        .group_by(column)
    )
    if work_pool_name is not None:
        query = query.where(flow_run.c.work_pool_name == work_pool_name)
    if among is not None:
        values = list(among)
        if not values:
            return Counter()
        query = query.where(column.in_(values))
    return Counter(dict(conn.execute(query).all()))


def _pool_row(conn: Connection, name: str) -> Any:
    return conn.execute(sa.select(work_pool).where(work_pool.c.name == name)).mappings().first()


def _work_pool(conn: Connection, row: Any, now: datetime) -> WorkPool:
    name = row["name"]
    online_since = now - timedelta(seconds=WORKER_ONLINE_SECONDS)
    online = conn.execute(
        sa.select(sa.func.count()).where(
            worker_table.c.work_pool_name == name, worker_table.c.last_heartbeat >= online_since
        )
    ).scalar_one()
    return WorkPool(
        id=row["id"],
        name=name,
        type=row["type"],
        description=row["description"],
        concurrency_limit=row["concurrency_limit"],
        paused=row["paused"],
        created=row["created"],
        active_runs=active_counts(conn, flow_run.c.work_pool_name, name)[name],
        online_workers=online,
    )


def _work_queue(row: Any, counts: Counter[Any]) -> WorkQueue:
    return WorkQueue(
        id=row["id"],
        name=row["name"],
        work_pool_name=row["work_pool_name"],
        priority=row["priority"],
        concurrency_limit=row["concurrency_limit"],
        paused=row["paused"],
        description=row["description"],
        created=row["created"],
        active_runs=counts[row["name"]],
    )


def _check_limit(limit: int | None) -> None:
    if limit is not None and not 0 <= limit <= MAX_STORED_INT:
        raise InvalidWorkPool(
            f"A concurrency limit is 0 or more and at most {MAX_STORED_INT:,}, not {limit:,}."
        )




def mark_workers_offline(conn: Connection, *, now: datetime) -> int:
    """Tell (an event) each worker that has gone silent for WORKER_ONLINE_SECONDS; how
    many. Idempotent: a worker is told once, until it polls again."""
    silent = conn.execute(
        sa.select(worker_table.c.work_pool_name, worker_table.c.name).where(
            worker_table.c.offline.is_(False),
            worker_table.c.last_heartbeat < now - timedelta(seconds=WORKER_ONLINE_SECONDS),
        )
    ).all()
    for pool_name, name in silent:
        told = conn.execute(
            sa.update(worker_table)
            .where(
                worker_table.c.work_pool_name == pool_name,
                worker_table.c.name == name,
                worker_table.c.offline.is_(False),
            )
            .values(offline=True)
        ).rowcount
        if told:
            tell_worker(conn, pool_name, name, "offline", now)
    return len(silent)


def tell_worker(conn: Connection, pool_name: str, name: str, what: str, now: datetime) -> None:
    """The event of a worker coming online or going offline."""
    emit(
        conn,
        f"anabranch.worker.{what}",
        {RESOURCE_ID: f"anabranch.worker.{pool_name}/{name}", RESOURCE_NAME: name},
        now=now,
        related=[
            {
                RESOURCE_ID: f"anabranch.work-pool.{pool_name}",
                RESOURCE_ROLE: "work-pool",
                RESOURCE_NAME: pool_name,
            }
        ],
    )
