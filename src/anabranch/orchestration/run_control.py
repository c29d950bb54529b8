"""Stopping flow runs from outside: cancellation, and what a worker reports when the
process running a flow run has exited.

A flow run runs in one process together with its in-process subflows; deployment children
(``run_deployment``) run in processes of their own, each under its worker. Cancelling a run
cancels every unfinished run below it: runs that never started are Cancelled at once, the
rest become Cancelling until the worker holding their process has stopped it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch.database.models import flow_run, task_run
from anabranch.exceptions import RunAlreadyFinal
from anabranch.orchestration import runs
from anabranch.orchestration.concurrency.leases import end_leases_of_runs
from anabranch.orchestration.transitions import lost_process_end, set_state
from anabranch.schemas import TERMINAL_TYPES, StateType

_NOT_FINAL = [t for t in StateType if t not in TERMINAL_TYPES]
_NOT_STARTED = (StateType.SCHEDULED, StateType.PAUSED)


def cancel_flow_run(
    conn: Connection, flow_run_id: uuid.UUID, *, descendants: bool = False, now: datetime
) -> list[uuid.UUID]:
    """Cancel a flow run and every unfinished flow run below it; returns the ids that were
    cancelled or are now Cancelling. A run that has ended already is left as it is, and
    only with ``descendants=True`` are its unfinished descendants cancelled."""
    run = runs.read_flow_run(conn, flow_run_id)
    final = run.state is not None and run.state.type in TERMINAL_TYPES
    if final and not descendants:
        assert run.state is not None
        raise RunAlreadyFinal(
            f"Flow run {run.name!r} ({flow_run_id}) is {run.state.name} already; "
            "`anabranch flow-run cancel ID --descendants` cancels the runs it started that "
            "are still going."
        )
    targets = _descendants(conn, flow_run_id) + ([] if final else [flow_run_id])
    changed = []
    for target, state_type, worker_name in _unfinished(conn, targets):
        if state_type in _NOT_STARTED or (
            state_type is StateType.PENDING and worker_name is None
        ):
            moved = set_state(
                conn, flow_run, target, StateType.CANCELLED, "Cancelled",
                "Cancelled before it started.", now=now, only_from=_NOT_FINAL,
            )
        else:
            moved = set_state(
                conn, flow_run, target, StateType.CANCELLING, "Cancelling",
                "Cancellation was requested.", now=now, only_from=_NOT_FINAL,
            )
        if moved:
            changed.append(target)
    return changed


def claim_flow_run(
    conn: Connection,
    flow_run_id: uuid.UUID,
    *,
    process_id: int,
    worker_name: str | None,
    now: datetime,
) -> bool:
    """The process about to carry out a worker's flow run claims it first; whether it may.

    Only a Pending run that no process has claimed, and that is still ``worker_name``'s,
    can be claimed. A claimed run is never put back in the queue, and a run put back and
    handed to another worker can not be claimed by the first one's process: a run of a
    deployment starts at most once."""
    conditions = [
        flow_run.c.id == flow_run_id,
        flow_run.c.state_type == StateType.PENDING.value,
        flow_run.c.infrastructure_pid.is_(None),
    ]
    if worker_name is not None:
        conditions.append(flow_run.c.worker_name == worker_name)
    claimed = conn.execute(
        sa.update(flow_run)
        .where(*conditions)
        .values(infrastructure_pid=process_id, heartbeat=now, updated=now)
    )
    return bool(claimed.rowcount)


def report_process_exit(
    conn: Connection,
    flow_run_id: uuid.UUID,
    exit_code: int,
    *,
    now: datetime,
    worker_name: str | None = None,
) -> None:
    """The worker's word that the process running ``flow_run_id`` has exited: a run being
    cancelled becomes Cancelled, one that had not finished is Crashed naming the exit code.
    Either way the runs that lived in that process end with it, and their slots are freed.

    The word of ``worker_name`` counts only while the run is still that worker's: a run
    put back in the queue (its worker went silent) and handed to another is left alone."""
    run = runs.read_flow_run(conn, flow_run_id)
    if worker_name is not None and run.worker_name != worker_name:
        return
    state = run.state.type if run.state is not None else None
    in_process = [flow_run_id, *_descendants(conn, flow_run_id, in_process_only=True)]
    if state is StateType.CANCELLING:
        _end_all(conn, in_process, StateType.CANCELLED, "The run was cancelled.", now)
    elif state not in TERMINAL_TYPES:
        message = f"The process running this flow run exited with code {exit_code}."
        _end_all(conn, in_process, StateType.CRASHED, message, now)
    task_ids = list(
        conn.execute(sa.select(task_run.c.id).where(task_run.c.flow_run_id.in_(in_process)))
        .scalars()
    )
    end_leases_of_runs(conn, in_process + task_ids)


def _end_all(
    conn: Connection, run_ids: list[uuid.UUID], type: StateType, message: str, now: datetime
) -> None:
    """End the unfinished flow runs among ``run_ids`` and their unfinished task runs as
    ``type``; when that is Crashed, a run being cancelled ends Cancelled instead (see
    ``transitions.lost_process_end``)."""
    flow_runs = [(target, state) for target, state, _ in _unfinished(conn, run_ids)]
    task_runs = conn.execute(
        sa.select(task_run.c.id, task_run.c.state_type).where(
            task_run.c.flow_run_id.in_(run_ids),
            task_run.c.state_type.in_([t.value for t in _NOT_FINAL]),
        )
    ).all()
    for table, runs_to_end in ((flow_run, flow_runs), (task_run, task_runs)):
        for target, state in runs_to_end:
            end = lost_process_end(StateType(state)) if type is StateType.CRASHED else type
            set_state(
                conn, table, target, end, end.value.title(), message, now=now,
                only_from=_NOT_FINAL,
            )


def _descendants(
    conn: Connection, run_id: uuid.UUID, *, in_process_only: bool = False
) -> list[uuid.UUID]:
    """Every flow run below ``run_id``; with ``in_process_only``, only subflows that ran in
    the same process (a deployment child runs in its own, and is not followed)."""
    found: list[uuid.UUID] = []
    frontier = [run_id]
    while frontier:
        query = sa.select(flow_run.c.id).where(flow_run.c.parent_flow_run_id.in_(frontier))
        if in_process_only:
            query = query.where(flow_run.c.deployment_id.is_(None))
        frontier = list(conn.execute(query).scalars())
        found.extend(frontier)
    return found


def _unfinished(
    conn: Connection, run_ids: list[uuid.UUID]
) -> list[tuple[uuid.UUID, StateType, str | None]]:
    if not run_ids:
        return []
    rows = conn.execute(
        sa.select(flow_run.c.id, flow_run.c.state_type, flow_run.c.worker_name).where(
            flow_run.c.id.in_(run_ids)
        )
    ).all()
    return [
        (run_id, StateType(state), worker)
        for run_id, state, worker in rows
        if state is not None and StateType(state) not in TERMINAL_TYPES
    ]
