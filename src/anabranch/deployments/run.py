"""run_deployment: start a run of a deployment, by default wait for it, and hand it back.

The child runs on a worker in its own process (and environment). Waiting is a long poll on
the store, so the caller learns the end at once rather than at its next poll; the returned
FlowRun's ``result()`` loads the child's persisted return value. A child that ends Failed,
Crashed or Cancelled raises DeploymentRunFailed in the caller, so a parent stops there as it
would with a subflow in its own process (``raise_on_failure=False`` returns it instead).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic_core import to_jsonable_python

from anabranch import _clock
from anabranch.client import get_client
from anabranch.context import FlowRunContext, TaskRunContext
from anabranch.exceptions import DeploymentRunFailed, InvalidParameters
from anabranch.logging import get_run_logger
from anabranch.schemas import FlowRun, StateType
from anabranch.schemas.deployments import DeploymentRunRequest, first_non_finite

_logger = logging.getLogger("anabranch.deployments")

# One long poll waits at most this long, so an interrupt is never far away.
_WAIT_SLICE_SECONDS = 30.0


def run_deployment(
    name: str | uuid.UUID,
    parameters: dict[str, Any] | None = None,
    scheduled_time: datetime | None = None,
    flow_run_name: str | None = None,
    timeout: float | None = None,
    poll_interval: float = 5,
    tags: list[str] | None = None,
    idempotency_key: str | None = None,
    work_queue_name: str | None = None,
    as_subflow: bool = True,
    job_variables: dict[str, Any] | None = None,
    raise_on_failure: bool = True,
) -> Any:
    """Create a run of the deployment ``name`` (``"flow-name/deployment-name"`` or its id)
    and, unless ``timeout=0``, wait up to ``timeout`` seconds (None: no limit) for it to
    end; returns the FlowRun. Awaitable when called from async code.

    Parameters travel to the run's process as JSON: a value JSON can not carry (an object,
    a function, NaN) raises InvalidParameters before anything is created, and the flow's
    signature checks the rest before anything is queued. With ``as_subflow`` (the default)
    a call inside a flow or task links the child to that run, so cancelling the parent
    cancels the child. ``poll_interval`` is the longest the wait goes without looking at
    the child; the end is noticed sooner.
    """
    if timeout is not None and timeout < 0:
        raise ValueError(f"run_deployment's timeout is 0 or more seconds, not {timeout}.")
    if poll_interval <= 0:
        raise ValueError(f"run_deployment's poll_interval is positive, not {poll_interval}.")
    json_parameters = _json_parameters(name, parameters or {})
    parent_flow_run_id, parent_task_run_id = _parent_ids() if as_subflow else (None, None)
    request = DeploymentRunRequest(
        parameters=json_parameters,
        scheduled_time=scheduled_time,
        flow_run_name=flow_run_name,
        tags=tags,
        # Always a key: a creation whose answer was lost can then be sent again safely.
        idempotency_key=idempotency_key or f"run_deployment:{uuid.uuid4()}",
        work_queue_name=work_queue_name,
        job_variables=job_variables,
        parent_flow_run_id=parent_flow_run_id,
        parent_task_run_id=parent_task_run_id,
    )
    # The parent's logger is looked up here: an async caller's wait runs in another thread.
    log = _log()

    def call() -> FlowRun:
        return _run(name, request, timeout, min(poll_interval, _WAIT_SLICE_SECONDS),
                    raise_on_failure, log)

    if not _in_event_loop():
        # Called outside the except clause: a failure of the call must not be chained to
        # the "no running event loop" that told us there is no loop.
        return call()
    return asyncio.to_thread(call)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run(
    name: str | uuid.UUID,
    request: DeploymentRunRequest,
    timeout: float | None,
    wait_slice: float,
    raise_on_failure: bool,
    log: logging.Logger | logging.LoggerAdapter,
) -> FlowRun:
    client = get_client()
    if isinstance(name, uuid.UUID):
        deployment = client.read_deployment(name)
    else:
        deployment = client.read_deployment_by_name(name)
    run = client.create_flow_run_from_deployment(deployment.id, request)
    log.info("Created flow run %r (%s) of deployment %r", run.name, run.id, deployment.full_name)
    if timeout == 0:
        return run
    deadline = None if timeout is None else _clock.monotonic() + timeout
    while not _is_final(run):
        remaining = wait_slice if deadline is None else deadline - _clock.monotonic()
        if remaining <= 0:
            return run
        run = client.wait_for_flow_run(run.id, min(remaining, wait_slice))
    assert run.state is not None
    failed = run.state.type in (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED)
    if failed and raise_on_failure:
        raise DeploymentRunFailed(
            f"Flow run {run.name!r} ({run.id}) of deployment {deployment.full_name!r} "
            f"ended {run.state.name}: {run.state.message or 'no message'}"
        )
    return run


def _json_parameters(name: str | uuid.UUID, parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters as the JSON the run will get, or InvalidParameters naming the
    deployment, the first parameter (``cfg.paths.0`` for a nested value) JSON can not carry,
    and what to pass instead. NaN and infinity are refused too: JSON has no such numbers,
    and they would arrive as None."""
    deployment = f"deployment {name!r}" if isinstance(name, str) else f"deployment {name}"
    try:
        jsonable: dict[str, Any] = to_jsonable_python(parameters)
    except Exception as exc:  # PydanticSerializationError, or bytes that are not UTF-8
        path, value = _first_unserializable(parameters, [])
        if isinstance(value, bytes):
            what = "bytes that are not UTF-8 text"
        elif isinstance(value, dict):
            what = "a dict with a key that is not text"
        else:
            what = f"of type {type(value).__qualname__}"
        subject = f"Parameter {_dotted(path)!r}" if path else "The parameters dict"
        raise InvalidParameters(
            f"{subject} of {deployment} is {what}, which JSON can not carry to the run's "
            "process; pass JSON-compatible values (text, numbers, true/false, None, and "
            "lists and dicts of them), e.g. a path or an id instead of the object."
        ) from exc
    found = first_non_finite(jsonable)
    if found is not None:
        where, number = found
        raise InvalidParameters(
            f"Parameter {_dotted(where)!r} of {deployment} is {number!r}, which JSON can not "
            "carry (it would arrive as None); pass a finite number, or None or a string if "
            "it stands for a missing or unbounded value."
        )
    return jsonable


def _first_unserializable(value: Any, path: list[Any]) -> tuple[list[Any], Any]:
    """The innermost value in ``value`` that JSON can not carry, and where it is."""
    if isinstance(value, dict):
        children: Any = value.items()
    elif isinstance(value, (list, tuple, set, frozenset)):
        children = enumerate(value)
    else:
        return path, value
    for key, child in children:
        try:
            to_jsonable_python(child)
        except Exception:
            return _first_unserializable(child, [*path, key])
    return path, value  # the children are fine: a key, or the container itself, is not


def _dotted(path: Sequence[Any]) -> str:
    return ".".join(str(part) for part in path)


def _is_final(run: FlowRun) -> bool:
    return run.state is not None and run.state.is_final()


def _parent_ids() -> tuple[uuid.UUID | None, uuid.UUID | None]:
    task_ctx = TaskRunContext.get()
    if task_ctx is not None:
        return task_ctx.task_run.flow_run_id, task_ctx.task_run.id
    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None:
        return flow_ctx.flow_run.id, None
    return None, None


def _log() -> logging.Logger | logging.LoggerAdapter:
    """The calling run's logger inside a run, so the line is stored with the parent."""
    if TaskRunContext.get() is not None or FlowRunContext.get() is not None:
        return get_run_logger()
    return _logger
