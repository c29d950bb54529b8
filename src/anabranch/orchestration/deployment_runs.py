"""Flow runs made from a deployment: asked for by a user, ``run_deployment`` or the scheduler.

A run is created Scheduled (at once, or at a given time) with parameters that were checked
against the flow's signature, so a bad parameter is refused here, before anything is
queued, with the parameter named. An idempotency key makes creation safe to repeat: the
second call returns the first run.
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
from anabranch.database.models import flow_run, run_state
from anabranch.database.upserts import upsert_into
from anabranch.exceptions import InvalidParameters, ObjectNotFound
from anabranch.orchestration import runs
from anabranch.orchestration.deployments import read_deployment
from anabranch.orchestration.queues import queue_row
from anabranch.schemas import FlowRun, StateType
from anabranch.schemas.deployments import Deployment, DeploymentRunRequest


def create_deployment_run(
    conn: Connection,
    deployment_id: uuid.UUID,
    request: DeploymentRunRequest | None = None,
    *,
    now: datetime,
) -> FlowRun:
    """A new Scheduled run of the deployment, or the existing one with the same
    idempotency key."""
    request = request or DeploymentRunRequest()
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


def _run_by_key(conn: Connection, deployment_id: uuid.UUID, key: str) -> uuid.UUID | None:
    return conn.execute(
        sa.select(flow_run.c.id).where(
            flow_run.c.deployment_id == deployment_id, flow_run.c.idempotency_key == key
        )
    ).scalar()
