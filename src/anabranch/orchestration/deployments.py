"""Deployments, and the flow runs made from them.

A run of a deployment is created Scheduled (at once, or at a given time) with parameters
that were checked against the flow's signature, so a bad parameter is refused here, before
anything is queued, with the parameter named. An idempotency key makes creation safe to
repeat: the second call returns the first run.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import jsonschema
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch._ids import new_id
from anabranch._names import generate_flow_run_name
from anabranch._validation import check_name
from anabranch.database.models import deployment, flow_run, run_state, work_pool
from anabranch.database.upserts import upsert_into
from anabranch.exceptions import InvalidDeployment, InvalidParameters, ObjectNotFound
from anabranch.orchestration import runs
from anabranch.orchestration.queues import DEFAULT_QUEUE, insert_queue, queue_row
from anabranch.orchestration.run_states import set_state
from anabranch.schemas import FlowRun, StateType
from anabranch.schemas.deployments import (
    Deployment,
    DeploymentRunRequest,
    Schedule,
    split_full_name,
)


def save_deployment(conn: Connection, new: Deployment, *, now: datetime) -> Deployment:
    """Create the deployment, or replace the one of the same flow and name (keeping its id,
    so its runs stay linked). Its work pool must exist; a named queue is created in it."""
    check_name(new.flow_name, "flow", error=InvalidDeployment)
    check_name(new.name, "deployment", error=InvalidDeployment)
    if new.work_pool_name is not None:
        if not _pool_exists(conn, new.work_pool_name):
            raise ObjectNotFound(
                f"No work pool named {new.work_pool_name!r} for deployment {new.full_name!r}; "
                f"create it with `anabranch work-pool create {new.work_pool_name}`."
            )
        queue = new.work_queue_name or DEFAULT_QUEUE
        if queue_row(conn, new.work_pool_name, queue) is None:
            insert_queue(conn, new.work_pool_name, queue, now=now)
        new = new.model_copy(update={"work_queue_name": queue})
    values = _deployment_values(new)
    existing = _row_by_name(conn, new.flow_name, new.name)
    if existing is None:
        conn.execute(sa.insert(deployment).values(id=new.id, created=now, updated=now, **values))
        deployment_id = new.id
    else:
        deployment_id = existing["id"]
        conn.execute(
            sa.update(deployment)
            .where(deployment.c.id == deployment_id)
            .values(updated=now, **values)
        )
    return read_deployment(conn, deployment_id)


def read_deployment(conn: Connection, deployment_id: uuid.UUID) -> Deployment:
    row = conn.execute(
        sa.select(deployment).where(deployment.c.id == deployment_id)
    ).mappings().first()
    if row is None:
        raise ObjectNotFound(
            f"No deployment with id {deployment_id}; `anabranch deployment ls` lists them."
        )
    return _deployment(row)


def read_deployment_by_name(conn: Connection, full_name: str) -> Deployment:
    """The deployment ``"flow-name/deployment-name"``."""
    flow_name, name = split_full_name(full_name)
    row = _row_by_name(conn, flow_name, name)
    if row is None:
        raise ObjectNotFound(
            f"No deployment {full_name!r}; `anabranch deployment ls` lists the deployments, "
            f"`anabranch deploy ENTRYPOINT --name {name} --pool POOL` creates one."
        )
    return _deployment(row)


def read_deployments(
    conn: Connection, *, flow_name: str | None = None, work_pool_name: str | None = None
) -> list[Deployment]:
    query = sa.select(deployment).order_by(deployment.c.flow_name, deployment.c.name)
    if flow_name is not None:
        query = query.where(deployment.c.flow_name == flow_name)
    if work_pool_name is not None:
        query = query.where(deployment.c.work_pool_name == work_pool_name)
    return [_deployment(row) for row in conn.execute(query).mappings()]


def set_deployment_paused(
    conn: Connection, deployment_id: uuid.UUID, paused: bool, *, now: datetime
) -> Deployment:
    """A paused deployment's schedules make no new runs; runs asked for still run."""
    read_deployment(conn, deployment_id)
    conn.execute(
        sa.update(deployment)
        .where(deployment.c.id == deployment_id)
        .values(paused=paused, updated=now)
    )
    return read_deployment(conn, deployment_id)


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
    conn.execute(sa.delete(deployment).where(deployment.c.id == deployment_id))


def create_deployment_run(
    conn: Connection,
    deployment_id: uuid.UUID,
    request: DeploymentRunRequest,
    *,
    now: datetime,
) -> FlowRun:
    """A new Scheduled run of the deployment, or the existing one with the same
    idempotency key."""
    dep = read_deployment(conn, deployment_id)
    if request.idempotency_key is not None:
        existing = _run_by_key(conn, deployment_id, request.idempotency_key)
        if existing is not None:
            return runs.read_flow_run(conn, existing)
    parameters = {**dep.parameters, **request.parameters}
    check_parameters(dep, parameters)
    queue = request.work_queue_name or dep.work_queue_name
    pool = dep.work_pool_name
    if pool is not None and queue is not None and queue_row(conn, pool, queue) is None:
        raise ObjectNotFound(
            f"No work queue {queue!r} in work pool {pool!r}; create it with "
            f"`anabranch work-queue create {queue} --pool {pool}`."
        )
    scheduled = request.scheduled_time or now
    run_id, state_id = new_id(), new_id()
    message = None if scheduled <= now else f"Starts at {scheduled.isoformat(timespec='seconds')}"
    values: dict[str, Any] = {
        "id": run_id,
        "name": request.flow_run_name or generate_flow_run_name(),
        "parameters": parameters,
        "tags": sorted(set(dep.tags if request.tags is None else request.tags)),
        "run_count": 0,
        "created": now,
        "updated": now,
        "state_id": state_id,
        "state_type": StateType.SCHEDULED.value,
        "state_name": "Scheduled",
        "state_message": message,
        "state_timestamp": now,
        "flow_name": dep.flow_name,
        "parent_flow_run_id": request.parent_flow_run_id,
        "parent_task_run_id": request.parent_task_run_id,
        "deployment_id": deployment_id,
        "work_pool_name": dep.work_pool_name,
        "work_queue_name": queue,
        "expected_start_time": scheduled,
        "idempotency_key": request.idempotency_key,
        "job_variables": request.job_variables,
    }
    insert = upsert_into(conn.dialect.name, flow_run).values(values)
    if request.idempotency_key is not None:
        # Two callers with one key at the same moment: one row wins, both get it.
        insert = insert.on_conflict_do_nothing(index_elements=["deployment_id", "idempotency_key"])
    if not conn.execute(insert).rowcount:
        existing = _run_by_key(conn, deployment_id, request.idempotency_key or "")
        assert existing is not None  # Invariant: the conflicting row exists
        return runs.read_flow_run(conn, existing)
    conn.execute(
        sa.insert(run_state).values(
            id=state_id, run_id=run_id, type=StateType.SCHEDULED.value, name="Scheduled",
            message=message, timestamp=now, result_ref=None,
        )
    )
    return runs.read_flow_run(conn, run_id)


def check_parameters(dep: Deployment, parameters: dict[str, Any]) -> None:
    """Refuse parameters the flow's signature does not accept, naming each wrong one."""
    schema = dep.parameter_schema
    if not schema:
        return
    problems = []
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for error in validator.iter_errors(parameters):
        where = ".".join(str(part) for part in error.absolute_path)
        if where:
            problems.append(f"parameter {where!r}: {error.message}")
        elif error.validator == "required":
            problems.append(f"missing parameter: {error.message}")
        elif error.validator == "additionalProperties":
            accepted = ", ".join(sorted(schema.get("properties", {}))) or "none"
            problems.append(f"{error.message} (the flow takes: {accepted})")
        else:
            problems.append(error.message)
    if problems:
        raise InvalidParameters(
            f"Deployment {dep.full_name!r} refused the run's parameters: "
            + "; ".join(problems)
            + "."
        )


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
    )


def _row_by_name(conn: Connection, flow_name: str, name: str) -> Any:
    return conn.execute(
        sa.select(deployment).where(deployment.c.flow_name == flow_name, deployment.c.name == name)
    ).mappings().first()


def _run_by_key(conn: Connection, deployment_id: uuid.UUID, key: str) -> uuid.UUID | None:
    return conn.execute(
        sa.select(flow_run.c.id).where(
            flow_run.c.deployment_id == deployment_id, flow_run.c.idempotency_key == key
        )
    ).scalar()


def _pool_exists(conn: Connection, name: str) -> bool:
    found = conn.execute(sa.select(work_pool.c.id).where(work_pool.c.name == name)).first()
    return found is not None

