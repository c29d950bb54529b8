"""The pages of what can run: flows with their recent runs, and deployments with their
schedules, upcoming runs and a Run form generated from the flow's parameter schema."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from anabranch import _clock
from anabranch.exceptions import AnabranchError, InvalidParameters, ObjectNotFound
from anabranch.schemas import StateType
from anabranch.schemas.deployments import Deployment, DeploymentRunRequest
from anabranch.server.ui.render import page
from anabranch.server.ui.runs import FormFields, store
from anabranch.server.ui.session import require_same_origin

router = APIRouter()


@router.get("/flows", include_in_schema=False)
def flows(request: Request) -> Response:
    return page(request, "flows.html", section="flows", flows=store(request).read_flows())


@router.get("/deployments", include_in_schema=False)
def deployments(request: Request) -> Response:
    return page(request, "deployments.html", section="deployments",
                deployments=store(request).read_deployments())


@router.get("/deployments/{deployment_id}", include_in_schema=False)
def deployment_page(request: Request, deployment_id: uuid.UUID) -> Response:
    try:
        deployment = store(request).read_deployment(deployment_id)
    except ObjectNotFound as exc:
        return page(request, "missing.html", status_code=404, message=str(exc))
    return _deployment_page(request, deployment, values=deployment.parameters, problems={})


@router.post("/deployments/{deployment_id}/run", include_in_schema=False,
             dependencies=[Depends(require_same_origin)])
def run_deployment_form(
    request: Request, deployment_id: uuid.UUID, fields_sent: FormFields
) -> Response:
    """Run the deployment with the form's typed parameters; the page again, with each
    problem beside its field, when they are refused."""
    client = store(request)
    deployment = client.read_deployment(deployment_id)
    form = {key: values[-1] for key, values in fields_sent.items()}
    fields = parameter_fields(deployment)
    values, problems = parse_parameters(fields, form)
    if not problems:
        try:
            run = client.create_flow_run_from_deployment(
                deployment_id, DeploymentRunRequest(parameters=values)
            )
        except InvalidParameters as exc:
            problems = _problems_by_field(str(exc), fields)
        else:
            return Response(status_code=204, headers={"hx-redirect": f"/runs/{run.id}"})
    # Answered 200: htmx swaps in the form with each problem beside its field.
    shown = {**values, **{k: form.get(k) for k in problems if k in form}}
    return _deployment_page(request, deployment, values=shown, problems=problems)


@router.post("/deployments/{deployment_id}/pause", include_in_schema=False,
             dependencies=[Depends(require_same_origin)])
def pause(request: Request, deployment_id: uuid.UUID, paused: bool = True) -> Response:
    try:
        store(request).set_deployment_paused(deployment_id, paused)
    except AnabranchError as exc:
        return page(request, "notice.html", message=str(exc))
    return Response(status_code=204, headers={"hx-refresh": "true"})


def _deployment_page(
    request: Request, deployment: Deployment, *, values: dict[str, Any],
    problems: dict[str, str], status_code: int = 200,
) -> Response:
    client = store(request)
    upcoming = client.read_flow_runs(
        deployment_id=deployment.id, state_types=[StateType.SCHEDULED], limit=100
    )
    upcoming.sort(key=lambda run: run.expected_start_time or run.created)
    recent = client.read_flow_runs(deployment_id=deployment.id, limit=20)
    return page(
        request, "deployment.html", status_code=status_code, section="deployments",
        deployment=deployment, upcoming=upcoming[:10], recent=recent,
        fields=parameter_fields(deployment), values=values, problems=problems,
        now=_clock.now(),
    )


def parameter_fields(deployment: Deployment) -> list[dict[str, Any]]:
    """One input per parameter of the flow's schema: its name, label, kind of input, default
    and whether it is required."""
    schema = deployment.parameter_schema or {}
    required = set(schema.get("required", []))
    fields = []
    for name, spec in (schema.get("properties") or {}).items():
        fields.append({
            "name": name,
            "title": spec.get("title") or name,
            "kind": _kind(spec),
            "required": name in required,
            "default": spec.get("default"),
            "description": spec.get("description"),
        })
    return fields


def parse_parameters(
    fields: list[dict[str, Any]], form: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's text as typed values, and a sentence per field that could not be read."""
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for field in fields:
        name, kind = field["name"], field["kind"]
        text = form.get(name, "").strip()
        if kind == "boolean":
            values[name] = text == "true"
            continue
        if text == "":
            if field["required"]:
                problems[name] = "Required: this parameter has no default."
            continue
        try:
            values[name] = _typed(kind, text)
        except ValueError as exc:
            problems[name] = str(exc)
    return values, problems


def _kind(spec: dict[str, Any]) -> str:
    types = spec.get("type")
    if types is None and "anyOf" in spec:
        types = [option.get("type") for option in spec["anyOf"] if option.get("type") != "null"]
        types = types[0] if len(types) == 1 else None
        spec = next((o for o in spec["anyOf"] if o.get("type") == types), spec)
    if types in ("integer", "number", "boolean"):
        return str(types)
    if types == "string":
        return {"date-time": "datetime", "date": "date"}.get(spec.get("format", ""), "string")
    return "json"


def _typed(kind: str, text: str) -> Any:
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number.") from None
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number.") from None
    if kind == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"Not valid JSON ({exc.msg} at character {exc.pos}).") from None
    if kind == "datetime" and len(text) == 16:
        return text + ":00"
    return text


def _problems_by_field(message: str, fields: list[dict[str, Any]]) -> dict[str, str]:
    """The store's refusal split by the parameter each part names ("" for the rest)."""
    names = {field["name"] for field in fields}
    problems: dict[str, str] = {}
    _, _, detail = message.partition(": ")
    for part in (detail or message).rstrip(".").split("; "):
        found = re.match(r"parameter '([^']+)'", part)
        key = found.group(1).split(".")[0] if found else ""
        key = key if key in names else ""
        problems[key] = (problems.get(key, "") + " " + part).strip()
    return problems
