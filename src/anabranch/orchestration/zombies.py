"""Zombie runs: Running flow runs whose process stopped heartbeating (killed, OOM, lost
machine). They, and their unfinished task runs, are marked Crashed and their concurrency
slots freed, so nothing waits forever on a run that will never finish."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch.database.models import (
    concurrency_lease,
    concurrency_lease_slot,
    flow_run,
    task_run,
)
from anabranch.orchestration.run_states import set_state
from anabranch.schemas import StateType

# A flow run is a zombie after this many heartbeat intervals without one.
ZOMBIE_AFTER_HEARTBEATS = 3

_UNFINISHED = (StateType.RUNNING.value, StateType.PENDING.value, StateType.SCHEDULED.value)
# Flow runs that heartbeat: running ones, and ones a worker took (Pending, Cancelling).
_HEARTBEATING = (StateType.RUNNING.value, StateType.PENDING.value, StateType.CANCELLING.value)


def silence_limit(heartbeat_seconds: float) -> float:
    """How long a flow run may go without a heartbeat before it counts as dead."""
    return ZOMBIE_AFTER_HEARTBEATS * heartbeat_seconds


def crash_zombies(conn: Connection, *, now: datetime, silent_for: float) -> list[uuid.UUID]:
    """Crash every Running (or worker-held Pending or Cancelling) flow run with no heartbeat
    for ``silent_for`` seconds; returns their ids. Safe to run in several server replicas
    at once (each row changes once)."""
    cutoff = now - timedelta(seconds=silent_for)
    _requeue_never_started(conn, now=now, cutoff=cutoff)
    zombies = list(
        conn.execute(
            sa.select(flow_run.c.id, flow_run.c.heartbeat).where(
                flow_run.c.state_type.in_(_HEARTBEATING),
                flow_run.c.heartbeat.is_not(None),
                flow_run.c.heartbeat < cutoff,
            )
        )
    )
    crashed: list[uuid.UUID] = []
    for zombie_id, heartbeat in zombies:
        message = (
            f"No heartbeat since {heartbeat.isoformat(timespec='seconds')}: the process "
            "running this flow run stopped (killed, out of memory, or its machine was lost)."
        )
        if _crash(conn, flow_run, zombie_id, message, now, only_heartbeating=True):
            crashed.append(zombie_id)
            tasks = conn.execute(
                sa.select(task_run.c.id).where(
                    task_run.c.flow_run_id == zombie_id, task_run.c.state_type.in_(_UNFINISHED)
                )
            ).scalars()
            task_ids = list(tasks)
            for task_id in task_ids:
                _crash(conn, task_run, task_id, "Its flow run crashed: " + message, now)
            free_slots(conn, [zombie_id, *task_ids])
    return crashed


def _requeue_never_started(conn: Connection, *, now: datetime, cutoff: datetime) -> None:
    """A run handed to a worker that went silent before a process claimed the run (the
    worker was killed, or the answer to its poll was lost) goes back to the queue for
    another worker, rather than being Crashed: nothing of it ever ran."""
    never_claimed = [flow_run.c.run_count == 0, flow_run.c.infrastructure_pid.is_(None)]
    lost = conn.execute(
        sa.select(flow_run.c.id, flow_run.c.worker_name).where(
            flow_run.c.state_type == StateType.PENDING.value,
            flow_run.c.worker_name.is_not(None),
            flow_run.c.heartbeat < cutoff,
            *never_claimed,
        )
    ).all()
    for run_id, worker_name in lost:
        set_state(
            conn, flow_run, run_id, StateType.SCHEDULED, "Scheduled",
            f"Back in the queue: worker {worker_name!r} went silent before starting it.",
            now=now, only_from=[StateType.PENDING], where=never_claimed,
            worker_name=None, heartbeat=None,
        )


def _crash(
    conn: Connection,
    table: sa.Table,
    run_id: uuid.UUID,
    message: str,
    now: datetime,
    only_heartbeating: bool = False,
) -> bool:
    only_from = [StateType(t) for t in _HEARTBEATING] if only_heartbeating else None
    return set_state(
        conn, table, run_id, StateType.CRASHED, "Crashed", message, now=now, only_from=only_from
    )


def free_slots(conn: Connection, run_ids: list[uuid.UUID]) -> None:
    leases = list(
        conn.execute(
            sa.select(concurrency_lease.c.id).where(concurrency_lease.c.run_id.in_(run_ids))
        ).scalars()
    )
    if leases:
        conn.execute(
            sa.delete(concurrency_lease_slot).where(concurrency_lease_slot.c.lease_id.in_(leases))
        )
        conn.execute(sa.delete(concurrency_lease).where(concurrency_lease.c.id.in_(leases)))
