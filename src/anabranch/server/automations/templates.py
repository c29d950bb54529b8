"""The Jinja templates of notification subjects and bodies and webhook payloads.

Users write them, and the server renders them, so they run in Jinja's sandbox: no private
attributes, and no calling the methods of the run, event or automation (``flow_run.result()``
would load a stored result in the server, which never unpickles). Messages are plain text,
so nothing is HTML-escaped; a name the context lacks renders empty.
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from pydantic import BaseModel

from anabranch.schemas.automations import StoredAutomation
from anabranch.schemas.deployments import Deployment
from anabranch.schemas.events import Event
from anabranch.schemas.runs import FlowRun

# Model methods a template may call: they only read.
_READ_ONLY_METHODS = frozenset({"get", "related_in", "related_id", "model_dump", "model_dump_json"})
# Bounds on `*` and `**`, which would let one template exhaust the server's memory or CPU.
_MAX_REPEATED_LENGTH = 100_000
_MAX_EXPONENT = 1_000


class TemplateError(ValueError):
    """A template that does not parse, or that fails or is refused while rendering."""


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def is_safe_callable(self, obj: Any) -> bool:
        owner = getattr(obj, "__self__", None)
        is_model = isinstance(owner, BaseModel) or (
            isinstance(owner, type) and issubclass(owner, BaseModel)
        )
        if is_model and getattr(obj, "__name__", "") not in _READ_ONLY_METHODS:
            return False
        return bool(super().is_safe_callable(obj))

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int) and abs(right) > _MAX_EXPONENT:
                raise SecurityError(f"an exponent above {_MAX_EXPONENT} is not allowed")
            return left**right
        for sequence, times in ((left, right), (right, left)):
            if (
                isinstance(sequence, (str, list, tuple))
                and isinstance(times, int)
                and len(sequence) * times > _MAX_REPEATED_LENGTH
            ):
                raise SecurityError(
                    f"repeating to more than {_MAX_REPEATED_LENGTH} items is not allowed"
                )
        return operator.mul(left, right)


_ENV = _Sandbox(autoescape=False, keep_trailing_newline=True)


@functools.lru_cache(maxsize=256)
def _compile(template: str) -> jinja2.Template:
    return _ENV.from_string(template)


def render(template: str, context: dict[str, Any]) -> str:
    """``template`` rendered over ``context`` in the sandbox; TemplateError naming the
    problem and the template when it does not parse, is refused or fails."""
    try:
        return _compile(template).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise _error(template, f"syntax error on line {exc.lineno}: {exc.message}") from exc
    except SecurityError as exc:
        raise _error(template, f"refused by the sandbox: {exc}") from exc
    except Exception as exc:
        raise _error(template, f"{type(exc).__name__} while rendering: {exc}") from exc


def _error(template: str, problem: str) -> TemplateError:
    return TemplateError(f"Template {template[:80]!r} can not be rendered: {problem}")


def build_template_context(
    event: Event | None,
    flow_run: FlowRun | None,
    deployment: Deployment | None,
    automation: StoredAutomation,
    flow_run_url: str | None,
) -> dict[str, Any]:
    """What templates see: the firing's event, run, flow, deployment and automation, the
    run's UI link, the event as JSON (``event_json``) and the default subject and body."""
    context: dict[str, Any] = {
        "event": event,
        "flow_run": flow_run,
        "flow": {"name": flow_run.flow_name} if flow_run is not None else None,
        "deployment": deployment,
        "automation": automation,
        "flow_run_url": flow_run_url,
        "event_json": event.model_dump_json() if event is not None else "null",
    }
    context["default_subject"] = default_subject(context)
    context["default_body"] = default_body(context)
    return context


def default_subject(context: dict[str, Any]) -> str:
    """One line: ``Flow run nimble-salmon of nightly entered Failed``, or what happened."""
    flow_run: FlowRun | None = context.get("flow_run")
    event: Event | None = context.get("event")
    if flow_run is not None and flow_run.state is not None:
        return f"Flow run {flow_run.name} of {flow_run.flow_name} entered {flow_run.state.name}"
    if event is not None:
        return f"{event.event} on {event.resource.name or event.resource.id}"
    return f"Automation {context['automation'].name} fired"


def default_body(context: dict[str, Any]) -> str:
    """Short plain-text lines: the run and flow, deployment, state and its message, when,
    the automation and the run's page."""
    flow_run: FlowRun | None = context.get("flow_run")
    event: Event | None = context.get("event")
    deployment: Deployment | None = context.get("deployment")
    lines = []
    if flow_run is not None:
        lines += [f"Flow run: {flow_run.name} ({flow_run.id})", f"Flow: {flow_run.flow_name}"]
    elif event is not None:
        lines += [f"Event: {event.event}", f"Resource: {event.resource.name or event.resource.id}"]
    if deployment is not None:
        lines.append(f"Deployment: {deployment.full_name}")
    state = flow_run.state if flow_run is not None else None
    if state is not None:
        lines.append(f"State: {state.name}")
        if state.message:
            lines.append(f"Message: {state.message}")
    when = state.timestamp if state is not None else (event.occurred if event else None)
    if when is not None:
        lines.append(f"When: {when.isoformat(timespec='seconds')}")
    lines.append(f"Automation: {context['automation'].name}")
    if context.get("flow_run_url"):
        lines.append(f"Details: {context['flow_run_url']}")
    return "\n".join(lines)
