"""Dispatch: handing due runs to workers, and what a worker's poll tells the store.

A run counts against its pool's, its queue's and its deployment's limit while it is Pending,
Running or Cancelling, from the moment a worker is handed it. Dispatch only hands out runs
whose every limit has room now, so a run blocked on one full deployment never holds up runs
of other deployments behind it, and due runs go out by queue priority, then scheduled time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch._ids import new_id
from anabranch.database.models import deployment, flow_run, work_pool, work_queue
from anabranch.database.models import worker as worker_table
from anabranch.orchestration import deployments, runs
from anabranch.orchestration.late_runs import apply_late_run_policies
from anabranch.orchestration.transitions import set_state
from anabranch.orchestration.work_pools import ACTIVE, active_counts, pool_missing, tell_worker
from anabranch.schemas import StateType
from anabranch.schemas.deployments import DispatchedRun, WorkerPoll, WorkerPollAnswer

_INFINITE = float("inf")


def has_work(
    conn: Connection, work_pool_name: str | None, poll: WorkerPoll, *, now: datetime
) -> bool:
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
    due = sa.select(flow_run.c.id).where(*_due_conditions(work_pool_name, poll, now))
    return conn.execute(due.limit(1)).first() is not None


def take_runs(
    conn: Connection, work_pool_name: str | None, poll: WorkerPoll, *, now: datetime
) -> WorkerPollAnswer:
    """Record the worker's heartbeat (and its running runs'), then hand it up to
    ``poll.limit`` due runs that every limit has room for, each moved to Pending.

    ``work_pool_name`` None takes runs of ``poll.deployment_ids`` (a ``serve`` process). Must run
    in a write transaction: the pool's row lock (the write lock on SQLite) makes dispatches
    to several workers one after the other, so limits hold across all of them.
    """
    if work_pool_name is not None:
        pool = _lock_pool(conn, work_pool_name)
        _record_worker(conn, work_pool_name, poll, now)
    else:
        pool = None
        _lock_deployments(conn, poll.deployment_ids)
        if poll.deployment_ids:
            conn.execute(
                sa.update(deployment)
                .where(deployment.c.id.in_(poll.deployment_ids))
                .values(last_polled=now)
            )
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
        conn, now=now, work_pool_name=work_pool_name, deployment_ids=poll.deployment_ids
    )
    room = _read_room(conn, pool, poll)
    for candidate in _candidates(conn, work_pool_name, poll, room, now):
        if len(answer.runs) >= poll.limit:
            break
        if room.take(candidate["deployment_id"], candidate["work_queue_name"]):
            dispatched = _dispatch(conn, candidate["id"], poll.worker_name, now)
            if dispatched is not None:
                answer.runs.append(dispatched)
    return answer


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


@dataclass
class Room:
    """The free slots of every limit on a dispatch's runs, counted once per dispatch and
    taken as runs are handed out. ``queue_order`` holds the open queues' priorities (empty
    for a ``serve`` process, which has no queues)."""

    pool_free: float = _INFINITE
    queue_free: dict[str, float] = field(default_factory=dict)
    queue_order: dict[str, int] = field(default_factory=dict)
    deployment_free: dict[uuid.UUID, float] = field(default_factory=dict)

    def full_deployments(self) -> list[uuid.UUID]:
        return [d for d, free in self.deployment_free.items() if free <= 0]

    def take(self, deployment_id: uuid.UUID | None, queue: str | None) -> bool:
        """Whether a run of this deployment and queue fits; if it does, it takes its slots."""
        if self.pool_free <= 0:
            return False
        if self.queue_order and self.queue_free.get(queue or "", 0) <= 0:
            return False
        if deployment_id is not None and self.deployment_free.get(deployment_id, 1) <= 0:
            return False
        self.pool_free -= 1
        if self.queue_order and queue is not None:
            self.queue_free[queue] -= 1
        if deployment_id in self.deployment_free:
            self.deployment_free[deployment_id] -= 1
        return True


def _read_room(conn: Connection, pool: Any, poll: WorkerPoll) -> Room:
    room = Room()
    work_pool_name = pool["name"] if pool is not None else None
    if pool is not None and pool["concurrency_limit"] is not None:
        active = active_counts(conn, flow_run.c.work_pool_name, work_pool_name)[work_pool_name]
        room.pool_free = pool["concurrency_limit"] - active
    if work_pool_name is not None:
        counts = active_counts(conn, flow_run.c.work_queue_name, work_pool_name)
        for row in conn.execute(
            sa.select(work_queue).where(work_queue.c.work_pool_name == work_pool_name)
        ).mappings():
            wanted = not poll.work_queue_names or row["name"] in poll.work_queue_names
            if row["paused"] or not wanted:
                continue
            limit = row["concurrency_limit"]
            free = _INFINITE if limit is None else limit - counts[row["name"]]
            room.queue_free[row["name"]] = free
            room.queue_order[row["name"]] = row["priority"]
    limited = dict(
        conn.execute(
            sa.select(deployment.c.id, deployment.c.concurrency_limit).where(
                deployment.c.concurrency_limit.is_not(None)
            )
        ).all()
    )
    counts = active_counts(conn, flow_run.c.deployment_id, None, list(limited))
    room.deployment_free = {d: limit - counts[d] for d, limit in limited.items()}
    return room


def _candidates(
    conn: Connection, work_pool_name: str | None, poll: WorkerPoll, room: Room, now: datetime
) -> list[Any]:
    """Due runs that may start, by queue priority then scheduled time. Runs of deployments
    that are full already are left out in the query, so they never crowd out the rest."""
    if room.pool_free <= 0:
        return []
    query = sa.select(
        flow_run.c.id, flow_run.c.deployment_id, flow_run.c.work_queue_name,
        flow_run.c.expected_start_time,
    ).where(*_due_conditions(work_pool_name, poll, now))
    if work_pool_name is not None:
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


def _due_conditions(work_pool_name: str | None, poll: WorkerPoll, now: datetime) -> list[Any]:
    conditions = [
        flow_run.c.state_type == StateType.SCHEDULED.value,
        flow_run.c.expected_start_time <= now,
    ]
    if work_pool_name is not None:
        conditions.append(flow_run.c.work_pool_name == work_pool_name)
        if poll.work_queue_names:
            conditions.append(flow_run.c.work_queue_name.in_(poll.work_queue_names))
    else:
        conditions.append(flow_run.c.deployment_id.in_(poll.deployment_ids))
    return conditions


def _dispatch(
    conn: Connection, run_id: uuid.UUID, worker_name: str, now: datetime
) -> DispatchedRun | None:
    """Move a due run to Pending, handed to ``worker_name``; None if it is no longer
    Scheduled (never, while the caller holds the pool's lock and read it Scheduled)."""
    moved = set_state(
        conn, flow_run, run_id, StateType.PENDING, "Pending", f"Handed to worker {worker_name!r}",
        now=now, only_from=[StateType.SCHEDULED], worker_name=worker_name, heartbeat=now,
    )
    if not moved:
        return None
    run = runs.read_flow_run(conn, run_id)
    assert run.deployment_id is not None  # Invariant: only deployment runs are dispatched
    dep = deployments.read_deployment(conn, run.deployment_id)
    job_variables = {**dep.job_variables, **(run.job_variables or {})}
    return DispatchedRun(flow_run=run, deployment=dep, job_variables=job_variables)


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


def _record_worker(conn: Connection, work_pool_name: str, poll: WorkerPoll, now: datetime) -> None:
    """Its heartbeat; a worker new to the pool, or back after being told offline, is told
    online (an event)."""
    this_worker = (
        worker_table.c.work_pool_name == work_pool_name,
        worker_table.c.name == poll.worker_name,
    )
    offline = conn.execute(sa.select(worker_table.c.offline).where(*this_worker)).scalar()
    if offline is None:
        conn.execute(
            sa.insert(worker_table).values(
                id=new_id(), work_pool_name=work_pool_name, name=poll.worker_name,
                limit=poll.worker_limit, last_heartbeat=now,
            )
        )
    else:
        conn.execute(
            sa.update(worker_table)
            .where(*this_worker)
            .values(last_heartbeat=now, limit=poll.worker_limit, offline=False)
        )
    if offline is not False:
        tell_worker(conn, work_pool_name, poll.worker_name, "online", now)


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
