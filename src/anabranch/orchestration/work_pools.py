"""Work pools, their queues and workers, and dispatch: handing due runs to workers.

A run counts against its pool's, its queue's and its deployment's limit while it is Pending,
Running or Cancelling, from the moment a worker is handed it. Dispatch only hands out runs
whose every limit has room now, so a run blocked on one full deployment never holds up runs
of other deployments behind it, and due runs go out by queue priority, then scheduled time.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch._ids import new_id
from anabranch._validation import check_name
from anabranch.database.models import deployment, flow_run, run_state, work_pool, work_queue
from anabranch.database.models import worker as worker_table
from anabranch.exceptions import ObjectNotFound
from anabranch.orchestration import deployments as deployments_core
from anabranch.orchestration import runs
from anabranch.orchestration.late_runs import apply_late_run_policies
from anabranch.orchestration.queues import DEFAULT_QUEUE, insert_queue
from anabranch.orchestration.queues import queue_row as _queue_row
from anabranch.orchestration.run_states import set_state
from anabranch.schemas import StateType
from anabranch.schemas.concurrency import MAX_STORED_INT
from anabranch.schemas.deployments import (
    DispatchedRun,
    Worker,
    WorkerPoll,
    WorkerPollAnswer,
    WorkPool,
    WorkQueue,
)
from anabranch.schemas.unset import UNSET

# A worker is online while it has polled within this many seconds.
WORKER_ONLINE_SECONDS = 30.0
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
        raise ValueError(f"Work pool type {type!r} is not supported; use 'process'.")
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
    pool_name: str,
    name: str,
    *,
    priority: int | None = None,
    concurrency_limit: int | None = None,
    description: str | None = None,
    now: datetime,
) -> WorkQueue:
    """Create a queue in a pool; for an existing one, set what is given (safe to repeat)."""
    if _pool_row(conn, pool_name) is None:
        raise pool_missing(pool_name)
    _check_limit(concurrency_limit)
    if priority is not None and not 1 <= priority <= MAX_STORED_INT:
        raise ValueError(
            f"Work queue priority must be 1 or more (1 first) and at most {MAX_STORED_INT:,}, "
            f"not {priority:,}."
        )
    existing = _queue_row(conn, pool_name, name)
    if existing is None:
        insert_queue(
            conn, pool_name, name, priority=priority or 1,
            concurrency_limit=concurrency_limit, description=description, now=now,
        )
    else:
        changes: dict[str, Any] = {"updated": now}
        if priority is not None:
            changes["priority"] = priority
        if concurrency_limit is not None:
            changes["concurrency_limit"] = concurrency_limit
        conn.execute(sa.update(work_queue).where(work_queue.c.id == existing["id"]).values(changes))
    return read_work_queue(conn, pool_name, name)


def read_work_queue(conn: Connection, pool_name: str, name: str) -> WorkQueue:
    row = _queue_row(conn, pool_name, name)
    if row is None:
        raise ObjectNotFound(
            f"No work queue {name!r} in work pool {pool_name!r}; create it with "
            f"`anabranch work-queue create {name} --pool {pool_name}`."
        )
    return _work_queue(row, _active_counts(conn, flow_run.c.work_queue_name, pool_name))


def read_work_queues(conn: Connection, pool_name: str | None = None) -> list[WorkQueue]:
    query = sa.select(work_queue).order_by(
        work_queue.c.work_pool_name, work_queue.c.priority, work_queue.c.name
    )
    if pool_name is not None:
        if _pool_row(conn, pool_name) is None:
            raise pool_missing(pool_name)
        query = query.where(work_queue.c.work_pool_name == pool_name)
    rows = list(conn.execute(query).mappings())
    counts: dict[str, Counter[Any]] = {}
    for row in rows:
        pool = row["work_pool_name"]
        if pool not in counts:
            counts[pool] = _active_counts(conn, flow_run.c.work_queue_name, pool)
    return [_work_queue(row, counts[row["work_pool_name"]]) for row in rows]


def update_work_queue(
    conn: Connection,
    pool_name: str,
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
    row = _queue_row(conn, pool_name, name)
    if row is None:
        read_work_queue(conn, pool_name, name)  # raises the not-found error
    conn.execute(sa.update(work_queue).where(work_queue.c.id == row["id"]).values(values))
    return read_work_queue(conn, pool_name, name)


def delete_work_queue(conn: Connection, pool_name: str, name: str) -> None:
    if name == DEFAULT_QUEUE:
        raise ValueError(
            f"The default queue of work pool {pool_name!r} can not be deleted; delete the pool."
        )
    read_work_queue(conn, pool_name, name)
    conn.execute(
        sa.delete(work_queue).where(
            work_queue.c.work_pool_name == pool_name, work_queue.c.name == name
        )
    )


def read_workers(conn: Connection, pool_name: str, *, now: datetime) -> list[Worker]:
    """The pool's workers, most recently heard from first."""
    rows = conn.execute(
        sa.select(worker_table)
        .where(worker_table.c.work_pool_name == pool_name)
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


def has_work(conn: Connection, pool_name: str | None, poll: WorkerPoll, *, now: datetime) -> bool:
    """Whether a poll would find something to do now: a cheap read-only check for a worker's
    long poll, which calls take_runs only when this says yes."""
    if poll.running:
        cancelling = sa.select(flow_run.c.id).where(
            flow_run.c.id.in_(poll.running),
            flow_run.c.state_type == StateType.CANCELLING.value,
        )
        if conn.execute(cancelling.limit(1)).first() is not None:
            return True
    if poll.limit <= 0:
        return False
    due = sa.select(flow_run.c.id).where(*_due_conditions(pool_name, poll, now))
    return conn.execute(due.limit(1)).first() is not None


def take_runs(
    conn: Connection, pool_name: str | None, poll: WorkerPoll, *, now: datetime
) -> WorkerPollAnswer:
    """Record the worker's heartbeat (and its running runs'), then hand it up to
    ``poll.limit`` due runs that every limit has room for, each moved to Pending.

    ``pool_name`` None takes runs of ``poll.deployment_ids`` (a ``serve`` process). Must run
    in a write transaction: the pool's row lock (the write lock on SQLite) makes dispatches
    to several workers one after the other, so limits hold across all of them.
    """
    if pool_name is not None:
        pool = _lock_pool(conn, pool_name)
        _record_worker(conn, pool_name, poll, now)
    else:
        pool = None
        _lock_deployments(conn, poll.deployment_ids)
    if poll.running:
        conn.execute(
            sa.update(flow_run)
            .where(flow_run.c.id.in_(poll.running), flow_run.c.state_type.in_(ACTIVE))
            .values(heartbeat=now)
        )
    for run_id in poll.returned:
        requeue(conn, run_id, f"Worker {poll.worker_name!r} gave it back unstarted.", now=now,
                worker_name=poll.worker_name)
    answer = WorkerPollAnswer(cancelling=_cancelling(conn, poll.running))
    if poll.limit <= 0 or (pool is not None and pool["paused"]):
        return answer
    apply_late_run_policies(
        conn, now=now, work_pool_name=pool_name, deployment_ids=poll.deployment_ids
    )
    room = _Room(conn, pool, poll)
    for candidate in _candidates(conn, pool_name, poll, room, now):
        if len(answer.runs) >= poll.limit:
            break
        if room.take(candidate):
            answer.runs.append(_dispatch(conn, candidate["id"], poll.worker_name, now))
    return answer


class _Room:
    """The free slots of every limit that applies to a pool's runs, counted once per dispatch
    and decremented as runs are handed out."""

    def __init__(self, conn: Connection, pool: Any, poll: WorkerPoll) -> None:
        pool_name = pool["name"] if pool is not None else None
        self.pool_free: float = float("inf")
        if pool is not None and pool["concurrency_limit"] is not None:
            active = _active_counts(conn, flow_run.c.work_pool_name, pool_name)[pool_name]
            self.pool_free = pool["concurrency_limit"] - active
        self.queue_free: dict[str, float] = {}
        self.queue_order: dict[str, int] = {}
        if pool_name is not None:
            counts = _active_counts(conn, flow_run.c.work_queue_name, pool_name)
            for row in conn.execute(
                sa.select(work_queue).where(work_queue.c.work_pool_name == pool_name)
            ).mappings():
                wanted = not poll.work_queue_names or row["name"] in poll.work_queue_names
                if row["paused"] or not wanted:
                    continue
                limit = row["concurrency_limit"]
                free = float("inf") if limit is None else limit - counts[row["name"]]
                self.queue_free[row["name"]] = free
                self.queue_order[row["name"]] = row["priority"]
        limited = dict(
            conn.execute(
                sa.select(deployment.c.id, deployment.c.concurrency_limit).where(
                    deployment.c.concurrency_limit.is_not(None)
                )
            ).all()
        )
        counts = _active_counts(conn, flow_run.c.deployment_id, None, list(limited))
        self.deployment_free = {d: limit - counts[d] for d, limit in limited.items()}

    def full_deployments(self) -> list[uuid.UUID]:
        return [d for d, free in self.deployment_free.items() if free <= 0]

    def take(self, run: Any) -> bool:
        queue = run["work_queue_name"]
        dep = run["deployment_id"]
        if self.pool_free <= 0:
            return False
        if self.queue_order and self.queue_free.get(queue, 0) <= 0:
            return False
        if self.deployment_free.get(dep, 1) <= 0:
            return False
        self.pool_free -= 1
        if self.queue_order:
            self.queue_free[queue] -= 1
        if dep in self.deployment_free:
            self.deployment_free[dep] -= 1
        return True


def _candidates(
    conn: Connection, pool_name: str | None, poll: WorkerPoll, room: _Room, now: datetime
) -> list[Any]:
    """Due runs that may start, by queue priority then scheduled time. Runs of deployments
    that are full already are left out in the query, so they never crowd out the rest."""
    if room.pool_free <= 0:
        return []
    query = sa.select(
        flow_run.c.id, flow_run.c.deployment_id, flow_run.c.work_queue_name,
        flow_run.c.expected_start_time,
    ).where(*_due_conditions(pool_name, poll, now))
    if pool_name is not None:
        open_queues = [q for q, free in room.queue_free.items() if free > 0]
        query = query.where(flow_run.c.work_queue_name.in_(open_queues))
    full = room.full_deployments()
    if full:
        query = query.where(flow_run.c.deployment_id.not_in(full))
    # Enough rows to fill the request even when some turn out blocked on the way.
    query = query.order_by(flow_run.c.expected_start_time, flow_run.c.id).limit(
        poll.limit * 4 + 50
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(conn.execute(query).mappings())
    rows.sort(key=lambda r: (room.queue_order.get(r["work_queue_name"], 0)))
    return rows


def _due_conditions(pool_name: str | None, poll: WorkerPoll, now: datetime) -> list[Any]:
    conditions = [
        flow_run.c.state_type == StateType.SCHEDULED.value,
        flow_run.c.expected_start_time <= now,
    ]
    if pool_name is not None:
        conditions.append(flow_run.c.work_pool_name == pool_name)
        if poll.work_queue_names:
            conditions.append(flow_run.c.work_queue_name.in_(poll.work_queue_names))
    else:
        conditions.append(flow_run.c.deployment_id.in_(poll.deployment_ids))
    return conditions


def _dispatch(
    conn: Connection, run_id: uuid.UUID, worker_name: str, now: datetime
) -> DispatchedRun:
    message = f"Handed to worker {worker_name!r}"
    state_id = new_id()
    conn.execute(
        sa.update(flow_run)
        .where(flow_run.c.id == run_id)
        .values(
            state_id=state_id, state_type=StateType.PENDING.value, state_name="Pending",
            state_message=message, state_timestamp=now, worker_name=worker_name,
            heartbeat=now, updated=now,
        )
    )
    conn.execute(
        sa.insert(run_state).values(
            id=state_id, run_id=run_id, type=StateType.PENDING.value, name="Pending",
            message=message, timestamp=now, result_ref=None,
        )
    )
    run = runs.read_flow_run(conn, run_id)
    assert run.deployment_id is not None  # Invariant: only deployment runs are dispatched
    dep = deployments_core.read_deployment(conn, run.deployment_id)
    job_variables = {**dep.job_variables, **(run.job_variables or {})}
    return DispatchedRun(flow_run=run, deployment=dep, job_variables=job_variables)


def requeue(
    conn: Connection, run_id: uuid.UUID, message: str, *, now: datetime, worker_name: str
) -> bool:
    """Put a run handed to ``worker_name`` that it never started back in the queue."""
    return set_state(
        conn, flow_run, run_id, StateType.SCHEDULED, "Scheduled", message, now=now,
        only_from=[StateType.PENDING], where=[
            flow_run.c.worker_name == worker_name, flow_run.c.run_count == 0
        ],
        worker_name=None, heartbeat=None,
    )


def _cancelling(conn: Connection, run_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    if not run_ids:
        return []
    return list(
        conn.execute(
            sa.select(flow_run.c.id).where(
                flow_run.c.id.in_(run_ids), flow_run.c.state_type == StateType.CANCELLING.value
            )
        ).scalars()
    )


def _active_counts(
    conn: Connection,
    column: sa.Column,
    pool_name: str | None,
    among: Iterable[Any] | None = None,
) -> Counter[Any]:
    """How many runs are active, per value of ``column`` (pool, queue or deployment)."""
    query = (
        sa.select(column, sa.func.count())
        .where(flow_run.c.state_type.in_(ACTIVE))
        .group_by(column)
    )
    if pool_name is not None:
        query = query.where(flow_run.c.work_pool_name == pool_name)
    if among is not None:
        values = list(among)
        if not values:
            return Counter()
        query = query.where(column.in_(values))
    return Counter(dict(conn.execute(query).all()))


def _record_worker(conn: Connection, pool_name: str, poll: WorkerPoll, now: datetime) -> None:
    updated = conn.execute(
        sa.update(worker_table)
        .where(worker_table.c.work_pool_name == pool_name, worker_table.c.name == poll.worker_name)
        .values(last_heartbeat=now, limit=poll.worker_limit)
    ).rowcount
    if not updated:
        conn.execute(
            sa.insert(worker_table).values(
                id=new_id(), work_pool_name=pool_name, name=poll.worker_name,
                limit=poll.worker_limit, last_heartbeat=now,
            )
        )


def _lock_pool(conn: Connection, name: str) -> Any:
    query = sa.select(work_pool).where(work_pool.c.name == name)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise pool_missing(name)
    return row


def _lock_deployments(conn: Connection, deployment_ids: Sequence[uuid.UUID]) -> None:
    if conn.dialect.name == "postgresql" and deployment_ids:
        conn.execute(
            sa.select(deployment.c.id)
            .where(deployment.c.id.in_(deployment_ids))
            .order_by(deployment.c.id)
            .with_for_update()
        )


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
        active_runs=_active_counts(conn, flow_run.c.work_pool_name, name)[name],
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
        raise ValueError(
            f"A concurrency limit is 0 or more and at most {MAX_STORED_INT:,}, not {limit:,}."
        )


