"""Events from user code: ``emit_event("shop.order.shipped", resource={...})``.

Stored with the runs' own events, listed by ``anabranch event ls`` and matched by
automations like any other. Inside a flow or task run, the run (and its flow) are added to
the event's related resources, so an automation can match events of one flow's runs.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from anabranch import _clock
from anabranch._ids import new_id
from anabranch.client import get_client
from anabranch.context import FlowRunContext, TaskRunContext
from anabranch.schemas.events import (
    RESOURCE_ID,
    RESOURCE_NAME,
    RESOURCE_ROLE,
    Event,
    RelatedResource,
    Resource,
)

__all__ = ["Event", "RelatedResource", "Resource", "emit_event"]


def emit_event(
    event: str,
    resource: dict[str, str],
    occurred: datetime | None = None,
    related: list[dict[str, str]] | list[RelatedResource] | None = None,
    payload: dict[str, Any] | None = None,
    id: uuid.UUID | None = None,
) -> Event:
    """Store an event named ``event`` about ``resource`` (labels, with at least
    ``anabranch.resource.id``) and return it. ``related`` resources need
    ``anabranch.resource.role`` too; ``payload`` is any JSON-serializable dict."""
    given = [r.root if isinstance(r, RelatedResource) else r for r in related or []]
    emitted = Event.model_validate(
        {
            "id": id or new_id(),
            "occurred": occurred or _clock.now(),
            "event": event,
            "resource": resource,
            "related": given + _current_runs(given),
            "payload": payload or {},
        }
    )
    get_client().emit_events([emitted])
    return emitted


def _current_runs(given: list[dict[str, str]]) -> list[dict[str, str]]:
    """The flow run, flow and task run this code runs in, as related resources (those not
    given already)."""
    found = []
    flow_context = FlowRunContext.get()
    if flow_context is not None:
        run = flow_context.flow_run
        found.append({RESOURCE_ID: f"anabranch.flow-run.{run.id}", RESOURCE_ROLE: "flow-run",
                      RESOURCE_NAME: run.name})
        found.append({RESOURCE_ID: f"anabranch.flow.{run.flow_name}", RESOURCE_ROLE: "flow",
                      RESOURCE_NAME: run.flow_name})
    task_context = TaskRunContext.get()
    if task_context is not None:
        task_run = task_context.task_run
        found.append({RESOURCE_ID: f"anabranch.task-run.{task_run.id}",
                      RESOURCE_ROLE: "task-run", RESOURCE_NAME: task_run.name})
    known = {(r.get(RESOURCE_ID), r.get(RESOURCE_ROLE)) for r in given}
    return [r for r in found if (r[RESOURCE_ID], r[RESOURCE_ROLE]) not in known]
