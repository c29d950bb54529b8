"""Zombie runs: Running flow runs whose process stopped heartbeating (killed, OOM, lost
machine). They, and their unfinished task runs, are marked Crashed and their concurrency
slots freed, so nothing waits forever on a run that will never finish."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch._ids import new_id
from anabranch.database.models import (
    concurrency_lease,
    concurrency_lease_slot,
    flow_run,
    run_state,
    task_run,
)
from anabranch.schemas import StateType

_UNFINISHED = (StateType.RUNNING.value, StateType.PENDING.value, StateType.SCHEDULED.value)


def crash_zombies(conn: Connection, *, now: datetime, silent_for: float) -> list[uuid.UUID]:
    """Crash every Running flow run with no heartbeat for ``silent_for`` seconds; returns
    their ids. Safe to run in several server replicas at once (each row changes once)."""
    cutoff = now - timedelta(seconds=silent_for)
    zombies = list(
        conn.execute(
            sa.select(flow_run.c.id, flow_run.c.heartbeat).where(
                flow_run.c.state_type == StateType.RUNNING.value,
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
        if _crash(conn, flow_run, zombie_id, message, now, only_running=True):
            crashed.append(zombie_id)
            tasks = conn.execute(
                sa.select(task_run.c.id).where(
                    task_run.c.flow_run_id == zombie_id, task_run.c.state_type.in_(_UNFINISHED)
                )
            ).scalars()
            task_ids = list(tasks)
            for task_id in task_ids:
                _crash(conn, task_run, task_id, "Its flow run crashed: " + message, now)
            _free_slots(conn, [zombie_id, *task_ids])
    return crashed


def _crash(
    conn: Connection,
    table: sa.Table,
    run_id: uuid.UUID,
    message: str,
    now: datetime,
    only_running: bool = False,
) -> bool:
    state_id = new_id()
    condition = table.c.state_type == StateType.RUNNING.value if only_running else sa.true()
    updated = conn.execute(
        sa.update(table)
        .where(table.c.id == run_id, condition)
        .values(
            state_id=state_id,
            state_type=StateType.CRASHED.value,
            state_name="Crashed",
            state_message=message,
            state_timestamp=now,
            end_time=now,
            updated=now,
        )
    ).rowcount
    if updated:
        conn.execute(
            sa.insert(run_state).values(
                id=state_id,
                run_id=run_id,
                type=StateType.CRASHED.value,
                name="Crashed",
                message=message,
                timestamp=now,
                result_ref=None,
            )
        )
    return bool(updated)


def _free_slots(conn: Connection, run_ids: list[uuid.UUID]) -> None:
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
