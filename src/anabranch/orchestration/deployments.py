"""Deployments: saving one (its schedules checked), reading, pausing and deleting them.

A deployment's schedules decide which runs the scheduler (``schedules``) makes ahead of time;
when they change, or the deployment is paused, the runs it made for the old schedule that
have not started go, so they do not run. Making a run of a deployment is
``deployment_runs``' job.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch._validation import check_name
from anabranch.database.models import deployment as deployment_table
from anabranch.database.models import flow_run, run_state, work_pool
from anabranch.exceptions import InvalidDeployment, ObjectNotFound
from anabranch.orchestration.events import emit
from anabranch.orchestration.late_runs import SCHEDULED_KEY_PREFIX
from anabranch.orchestration.queues import DEFAULT_QUEUE, insert_queue, queue_row
from anabranch.orchestration.schedule_times import check_schedule
from anabranch.orchestration.transitions import set_state
from anabranch.schemas import StateType
from anabranch.schemas.deployments import Deployment, Schedule, split_full_name
from anabranch.schemas.events import RESOURCE_ID, RESOURCE_NAME, RESOURCE_ROLE


def save_deployment(conn: Connection, deployment: Deployment, *, now: datetime) -> Deployment:
    """Create the deployment, or replace the one of the same flow and name (keeping its id,
    so its runs stay linked). Its schedules must be ones we can evaluate, and its work pool
    must exist; a named queue is created in it. Replacing one whose schedules change, or
    saving it paused, drops the old schedule's future runs (``forget_scheduled_runs``)."""
    for schedule in deployment.schedules:
        check_schedule(schedule)
    check_name(deployment.flow_name, "flow", error=InvalidDeployment)
    check_name(deployment.name, "deployment", error=InvalidDeployment)
    if deployment.work_pool_name is not None:
        if not _pool_exists(conn, deployment.work_pool_name):
            raise ObjectNotFound(
                f"No work pool named {deployment.work_pool_name!r} for deployment "
                f"{deployment.full_name!r}; "
                f"create it with `anabranch work-pool create {deployment.work_pool_name}`."
            )
        queue = deployment.work_queue_name or DEFAULT_QUEUE
        if queue_row(conn, deployment.work_pool_name, queue) is None:
            insert_queue(conn, deployment.work_pool_name, queue, now=now)
        deployment = deployment.model_copy(update={"work_queue_name": queue})
    values = _deployment_values(deployment)
    existing = _row_by_name(conn, deployment.flow_name, deployment.name)
    if existing is None:
        conn.execute(
            sa.insert(deployment_table).values(
                id=deployment.id, created=now, updated=now, **values
            )
        )
        created = read_deployment(conn, deployment.id)
        _tell(conn, created, "created", now)
        return created
    conn.execute(
        sa.update(deployment_table)
        .where(deployment_table.c.id == existing["id"])
        .values(updated=now, **values)
    )
    saved = read_deployment(conn, existing["id"])
    if _deployment(existing).schedules != saved.schedules or saved.paused:
        forget_scheduled_runs(conn, saved.id, now=now)
    _tell(conn, saved, "updated", now)
    return saved


def set_deployment_paused(
    conn: Connection, deployment_id: uuid.UUID, paused: bool, *, now: datetime
) -> Deployment:
    """A paused deployment's schedules make no new runs, and the future runs they made go;
    runs asked for still run. Resuming it lets the next scheduler tick make runs again."""
    was_paused = read_deployment(conn, deployment_id).paused
    conn.execute(
        sa.update(deployment_table)
        .where(deployment_table.c.id == deployment_id)
        .values(paused=paused, updated=now)
    )
    if paused:
        forget_scheduled_runs(conn, deployment_id, now=now)
    changed = read_deployment(conn, deployment_id)
    if was_paused != paused:
        _tell(conn, changed, "paused" if paused else "resumed", now)
    return changed


def _tell(conn: Connection, dep: Deployment, what: str, now: datetime) -> None:
    """The event of a deployment created, updated, paused or resumed."""
    emit(
        conn,
        f"anabranch.deployment.{what}",
        {RESOURCE_ID: f"anabranch.deployment.{dep.id}", RESOURCE_NAME: dep.full_name},
        now=now,
        related=[
            {
                RESOURCE_ID: f"anabranch.flow.{dep.flow_name}",
                RESOURCE_ROLE: "flow",
                RESOURCE_NAME: dep.flow_name,
            }
        ],
    )


def forget_scheduled_runs(conn: Connection, deployment_id: uuid.UUID, *, now: datetime) -> int:
    """Delete the deployment's future runs the scheduler made that have not started; for
    when its schedules change or it is paused, so the old schedule's runs do not run.
    The next tick makes the runs of the new schedule. Returns how many went."""
    doomed = sa.select(flow_run.c.id).where(
        flow_run.c.deployment_id == deployment_id,
        flow_run.c.state_type == StateType.SCHEDULED.value,
        flow_run.c.expected_start_time > now,
        flow_run.c.idempotency_key.startswith(SCHEDULED_KEY_PREFIX),
    )
    ids = list(conn.execute(doomed).scalars())
    if ids:
        conn.execute(sa.delete(run_state).where(run_state.c.run_id.in_(ids)))
        conn.execute(sa.delete(flow_run).where(flow_run.c.id.in_(ids)))
    return len(ids)


def read_deployment(conn: Connection, deployment_id: uuid.UUID) -> Deployment:
    row = conn.execute(
        sa.select(deployment_table).where(deployment_table.c.id == deployment_id)
    ).mappings().first()
    if row is None:
        raise ObjectNotFound(
            f"No deployment with id {deployment_id}; `anabranch deployment ls` lists them."
        )
    return _deployment(row)


def read_deployment_by_name(conn: Connection, name: str) -> Deployment:
    """The deployment ``"flow-name/deployment-name"``."""
    flow_name, short_name = split_full_name(name)
    row = _row_by_name(conn, flow_name, short_name)
    if row is None:
        raise ObjectNotFound(
            f"No deployment {name!r}; `anabranch deployment ls` lists the deployments, "
            f"`anabranch deploy ENTRYPOINT --name {short_name} --pool POOL` creates one."
        )
    return _deployment(row)


def read_deployments(
    conn: Connection, *, flow_name: str | None = None, work_pool_name: str | None = None
) -> list[Deployment]:
    table = deployment_table
    query = sa.select(table).order_by(table.c.flow_name, table.c.name)
    if flow_name is not None:
        query = query.where(deployment_table.c.flow_name == flow_name)
    if work_pool_name is not None:
        query = query.where(deployment_table.c.work_pool_name == work_pool_name)
    return [_deployment(row) for row in conn.execute(query).mappings()]


def delete_deployment(conn: Connection, deployment_id: uuid.UUID, *, now: datetime) -> None:
    """Delete a deployment; its runs that had not started are cancelled, the rest stay."""
    dep = read_deployment(conn, deployment_id)
    waiting = conn.execute(
        sa.select(flow_run.c.id).where(
            flow_run.c.deployment_id == deployment_id,
            flow_run.c.state_type == StateType.SCHEDULED.value,
        )
    ).scalars()
    for run_id in list(waiting):
        set_state(
            conn, flow_run, run_id, StateType.CANCELLED, "Cancelled",
            f"Its deployment {dep.full_name!r} was deleted.", now=now,
            only_from=[StateType.SCHEDULED],
        )
    conn.execute(sa.delete(deployment_table).where(deployment_table.c.id == deployment_id))


def _deployment_values(dep: Deployment) -> dict[str, Any]:
    return {
        "name": dep.name,
        "flow_name": dep.flow_name,
        "entrypoint": dep.entrypoint,
        "description": dep.description,
        "version": dep.version,
        "tags": dep.tags,
        "parameters": dep.parameters,
        "parameter_schema": dep.parameter_schema,
        "work_pool_name": dep.work_pool_name,
        "work_queue_name": dep.work_queue_name,
        "job_variables": dep.job_variables,
        "concurrency_limit": dep.concurrency_limit,
        "schedules": [s.model_dump(mode="json") for s in dep.schedules],
        "late_run_policy": dep.late_run_policy.value,
        "max_lateness_seconds": dep.max_lateness_seconds,
        "paused": dep.paused,
    }


def _deployment(row: Any) -> Deployment:
    return Deployment(
        id=row["id"],
        name=row["name"],
        flow_name=row["flow_name"],
        entrypoint=row["entrypoint"],
        description=row["description"],
        version=row["version"],
        tags=row["tags"],
        parameters=row["parameters"],
        parameter_schema=row["parameter_schema"],
        work_pool_name=row["work_pool_name"],
        work_queue_name=row["work_queue_name"],
        job_variables=row["job_variables"],
        concurrency_limit=row["concurrency_limit"],
        schedules=[Schedule.model_validate(s) for s in row["schedules"]],
        late_run_policy=row["late_run_policy"],
        max_lateness_seconds=row["max_lateness_seconds"],
        paused=row["paused"],
        created=row["created"],
        updated=row["updated"],
        last_polled=row["last_polled"],
    )


def _row_by_name(conn: Connection, flow_name: str, name: str) -> Any:
    return conn.execute(
        sa.select(deployment_table).where(
            deployment_table.c.flow_name == flow_name, deployment_table.c.name == name
        )
    ).mappings().first()


def _pool_exists(conn: Connection, name: str) -> bool:
    found = conn.execute(sa.select(work_pool.c.id).where(work_pool.c.name == name)).first()
    return found is not None
