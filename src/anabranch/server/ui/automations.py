"""The automations pages: every automation with its trigger in a line, its actions (secrets
masked by the store) and how its last firing went; one automation's page with its latest
firings and how each action went; and the form that pauses or resumes one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from anabranch.exceptions import AnabranchError, ObjectNotFound
from anabranch.schemas.automations import EventTrigger
from anabranch.schemas.events import RESOURCE_ROLE
from anabranch.server.ui.render import page
from anabranch.server.ui.runs import FormFields, store
from anabranch.server.ui.session import require_same_origin

FIRINGS_SHOWN = 50
# The prefix of a resource's own labels, left out where a label is shown by its short name.
_RESOURCE_PREFIX = "anabranch.resource."

router = APIRouter()


@router.get("/automations", include_in_schema=False)
def automations(request: Request) -> Response:
    client = store(request)
    shown = []
    for automation in client.read_automations():
        last = client.read_automation_firings(automation_name=automation.name, limit=1)
        shown.append({"automation": automation, "last": last[0] if last else None})
    return page(request, "automations.html", section="automations", automations=shown,
                trigger_summary=trigger_summary, action_summary=action_summary)


@router.post("/automations/enabled", include_in_schema=False,
             dependencies=[Depends(require_same_origin)])
def set_enabled(request: Request, fields_sent: FormFields) -> Response:
    """Pause (``enabled=false``) or resume the automation named in the form; the page it
    was sent from shows the change."""
    form = {key: values[-1] for key, values in fields_sent.items()}
    try:
        store(request).set_automation_enabled(form.get("name", ""), form.get("enabled") == "true")
    except AnabranchError as exc:
        return page(request, "notice.html", message=str(exc))
    return Response(status_code=204, headers={"hx-refresh": "true"})


# A path parameter: an automation's name may hold a slash.
@router.get("/automations/{name:path}", include_in_schema=False)
def automation_page(request: Request, name: str) -> Response:
    client = store(request)
    try:
        automation = client.read_automation(name)
    except ObjectNotFound as exc:
        return page(request, "missing.html", status_code=404, message=str(exc))
    firings = client.read_automation_firings(automation_name=name, limit=FIRINGS_SHOWN)
    return page(request, "automation.html", section="automations", automation=automation,
                firings=firings, shown_limit=FIRINGS_SHOWN, action_fields=action_fields,
                labels_text=labels_text, seconds=_seconds)


def trigger_summary(trigger: EventTrigger) -> str:
    """A trigger in one line: what it expects, how many in what time, and for what."""
    expected = ", ".join(sorted(trigger.expect)) or "any event"
    text = f"{trigger.posture}: {expected}"
    if trigger.after:
        text += f" after {', '.join(sorted(trigger.after))}"
    if trigger.posture == "Proactive":
        text += f", fewer than {trigger.threshold} within {_seconds(trigger.within)}"
    elif trigger.threshold > 1 or trigger.within:
        text += f", {trigger.threshold} within {_seconds(trigger.within)}"
    if trigger.match:
        text += f"; resource {labels_text(trigger.match)}"
    related = [labels_text(spec) for spec in trigger.related_specs if spec]
    if related:
        text += "; related to " + " and ".join(related)
    if trigger.for_each:
        text += f"; for each {', '.join(sorted(trigger.for_each))}"
    return text


def labels_text(labels: dict[str, str | list[str]]) -> str:
    """Labels to match as ``flow name=nightly``: the role first, the resource's own labels
    by their short names, a list of accepted values joined by ``|``."""
    def value(found: str | list[str]) -> str:
        return found if isinstance(found, str) else "|".join(found)

    role = labels.get(RESOURCE_ROLE)
    parts = [f"{key.removeprefix(_RESOURCE_PREFIX)}={value(found)}"
             for key, found in labels.items() if key != RESOURCE_ROLE]
    return " ".join(([value(role)] if role else []) + parts)


def action_summary(action: Any) -> str:
    """An action in a line: its type and what it acts on (a URL comes masked from the
    store)."""
    state = getattr(action, "state", None)
    words = [action.type, getattr(action, "method", None), getattr(action, "url", None),
             f"to {state.value}" if state else None, getattr(action, "name", None)]
    return " ".join(word for word in words if word)


def action_fields(action: Any) -> dict[str, Any]:
    """What an action says besides its type, as JSON values (secrets masked by the store)."""
    fields: dict[str, Any] = action.model_dump(mode="json", exclude={"type"})
    return fields


def _seconds(within: timedelta) -> str:
    return f"{within.total_seconds():g} s"
