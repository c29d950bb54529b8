"""Flow runs, task runs, their states and logs; and record batches, which write them all."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError

from anabranch.schemas import FlowRun, LogRecord, RecordBatch, StateRecord, StateType, TaskRun
from anabranch.server.dependencies import Store

router = APIRouter(tags=["runs"])

# The databases' integer range, so a huge limit is refused up front instead of by the driver.
_MAX_INT = 2**63 - 1
Limit = Annotated[int | None, Query(ge=1, le=_MAX_INT, description="At most this many.")]
Offset = Annotated[int, Query(ge=0, le=_MAX_INT, description="Skip this many first.")]
_AT_OR_AFTER = "At or after this time (ISO 8601 with a time zone)."
_AT_OR_BEFORE = "At or before this time (ISO 8601 with a time zone)."


# The body is declared here and validated in the route: see write_batch.
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/RecordBatch"}}
        },
    }
}


_REFUSED: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "A snapshot breaks the state rules (a final run moving on); that run "
        "was left as it was and the rest of the batch was stored. ``detail`` names the rule "
        "and the runs, ``refused`` lists them as ``{run_id, rule}``."
    }
}


@router.post(
    "/batches",
    status_code=status.HTTP_204_NO_CONTENT,
    openapi_extra=_BATCH_BODY,
    responses=_REFUSED,
)
async def write_batch(request: Request, store: Store) -> None:
    """Store run snapshots, state transitions and log lines; sending a batch twice is safe.

    Batches are the hot path, so pydantic-core validates the body straight from its bytes:
    about a third of the time of decoding the JSON first and validating the result."""
    try:
        batch = RecordBatch.model_validate_json(await request.body())
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
    await run_in_threadpool(store.write_batch, batch)


@router.get("/flow_runs")
def read_flow_runs(
    store: Store,
    limit: Limit = None,
    offset: Offset = 0,
    state_type: Annotated[list[StateType] | None, Query(description="Any of these.")] = None,
    state_name: Annotated[list[str] | None, Query(description="Any of these, any case.")] = None,
    flow_name: str | None = None,
    parent_flow_run_id: uuid.UUID | None = None,
    tag: Annotated[list[str] | None, Query(description="Runs having all of these.")] = None,
    started_after: Annotated[datetime | None, Query(description=_AT_OR_AFTER)] = None,
    started_before: Annotated[datetime | None, Query(description=_AT_OR_BEFORE)] = None,
    created_after: Annotated[datetime | None, Query(description=_AT_OR_AFTER)] = None,
    created_before: Annotated[datetime | None, Query(description=_AT_OR_BEFORE)] = None,
) -> list[FlowRun]:
    """Flow runs, newest first. The time bounds include their ends and need a time zone
    (``Z`` or an offset, ``+`` sent as ``%2B``); a run not yet started matches no start
    bound."""
    return store.read_flow_runs(
        limit=limit,
        offset=offset,
        state_types=state_type,
        state_names=state_name,
        flow_name=flow_name,
        parent_flow_run_id=parent_flow_run_id,
        tags=tag,
        started_after=started_after,
        started_before=started_before,
        created_after=created_after,
        created_before=created_before,
    )


@router.get("/flow_runs/{flow_run_id}", responses={404: {"description": "No such flow run."}})
def read_flow_run(flow_run_id: uuid.UUID, store: Store) -> FlowRun:
    return store.read_flow_run(flow_run_id)


@router.get("/task_runs")
def read_task_runs(store: Store, flow_run_id: uuid.UUID | None = None) -> list[TaskRun]:
    """Task runs of a flow run (all when not given), oldest first."""
    return store.read_task_runs(flow_run_id=flow_run_id)


@router.get("/task_runs/{task_run_id}", responses={404: {"description": "No such task run."}})
def read_task_run(task_run_id: uuid.UUID, store: Store) -> TaskRun:
    return store.read_task_run(task_run_id)


@router.get("/runs/{run_id}/states")
def read_states(run_id: uuid.UUID, store: Store) -> list[StateRecord]:
    """The state history of a flow run or task run, oldest first."""
    return store.read_states(run_id)


@router.get("/logs")
def read_logs(
    store: Store,
    flow_run_id: uuid.UUID | None = None,
    task_run_id: uuid.UUID | None = None,
    limit: Limit = None,
) -> list[LogRecord]:
    """Log lines, oldest first, of a flow run (with its task runs') or of one task run."""
    return store.read_logs(flow_run_id=flow_run_id, task_run_id=task_run_id, limit=limit)
