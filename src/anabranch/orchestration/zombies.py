"""Zombie runs: Running flow runs whose process stopped heartbeating (killed, OOM, lost
machine). They, and their unfinished task runs, are marked Crashed (Cancelled, for a run that
was being cancelled) and their concurrency slots freed, so nothing waits forever on a run
that will never finish."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch.database.models import flow_run, task_run
from anabranch.orchestration.concurrency.leases import end_leases_of_runs
from anabranch.orchestration.transitions import lost_process_end, set_state
from anabranch.schemas import StateType

# A flow run is a zombie after this many heartbeat intervals without one.
ZOMBIE_AFTER_HEARTBEATS = 3

_UNFINISHED = (StateType.RUNNING.value, StateType.PENDING.value, StateType.SCHEDULED.value)
# Flow runs that heartbeat: running ones, and ones a worker took (Pending, Cancelling).
_HEARTBEATING = (StateType.RUNNING, StateType.PENDING, StateType.CANCELLING)


def silence_limit(heartbeat_seconds: float) -> float:
    """How long a flow run may go without a heartbeat before it counts as dead."""
    return ZOMBIE_AFTER_HEARTBEATS * heartbeat_seconds


def crash_zombies(conn: Connection, *, now: datetime, silent_for: float) -> list[uuid.UUID]:
    """Crash every Running (or worker-held Pending) flow run with no heartbeat for
    ``silent_for`` seconds, and cancel every Cancelling one (its process is stopped, as
    asked; see ``transitions.lost_process_end``); returns their ids. Safe to run in several
    server replicas at once (each row changes once)."""
    cutoff = now - timedelta(seconds=silent_for)
    _requeue_never_started(conn, now=now, cutoff=cutoff)
    zombies = list(
        conn.execute(
            sa.select(flow_run.c.id, flow_run.c.heartbeat, flow_run.c.state_type).where(
                flow_run.c.state_type.in_([t.value for t in _HEARTBEATING]),
                flow_run.c.heartbeat.is_not(None),
                flow_run.c.heartbeat < cutoff,
            )
        )
    )
    crashed: list[uuid.UUID] = []
    for zombie_id, heartbeat, state_type in zombies:
        message = (
            f"No heartbeat since {heartbeat.isoformat(timespec='seconds')}: the process "
            "running this flow run stopped (killed, out of memory, or its machine was lost)."
        )
        end = lost_process_end(StateType(state_type))
        if _end(conn, flow_run, zombie_id, end, message, now, only_from=_HEARTBEATING):
            crashed.append(zombie_id)
            tasks = conn.execute(
                sa.select(task_run.c.id).where(
                    task_run.c.flow_run_id == zombie_id, task_run.c.state_type.in_(_UNFINISHED)
                )
            ).scalars()
            task_ids = list(tasks)
            how = "crashed" if end is StateType.CRASHED else "was cancelled"
            for task_id in task_ids:
                _end(conn, task_run, task_id, end, f"Its flow run {how}: {message}", now)
            end_leases_of_runs(conn, [zombie_id, *task_ids])
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


def _end(
    conn: Connection,
    table: sa.Table,
    run_id: uuid.UUID,
    type: StateType,
    message: str,
    now: datetime,
    only_from: Collection[StateType] | None = None,
) -> bool:
    return set_state(
        conn, table, run_id, type, type.value.title(), message, now=now, only_from=only_from
    )
