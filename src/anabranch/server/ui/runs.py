"""The pages of runs: the runs list (root runs, their children summarised), a flow run's
page with its tabs, a task run's page, and the parts htmx fetches into them.

Every read goes through the store's declared operations (the same ones every client
calls), and every list is paged on the server: a parent of 10,000 children costs a page of
rows and a few grouped counts, never the 10,000 runs.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from anabranch import _clock
from anabranch.client.embedded import EmbeddedClient
from anabranch.exceptions import AnabranchError, ObjectNotFound
from anabranch.schemas import FlowRun, StateType, TaskRun
from anabranch.schemas.deployments import DeploymentRunRequest
from anabranch.schemas.summaries import ChildSummary
from anabranch.server.ui.render import form_fields, page
from anabranch.server.ui.session import require_same_origin

PAGE_SIZE = 50
LOG_PAGE_SIZE = 500
TABS = ("children", "timeline", "logs", "task-runs", "details")
RANGES = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
          "30d": timedelta(days=30)}
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
# How long after a run ends its notifications section looks for firings about it: the
# automations fire on the run's last state a moment after it is written.
NOTIFYING = timedelta(minutes=2)

router = APIRouter()
FormFields = Annotated[dict[str, list[str]], Depends(form_fields)]


def store(request: Request) -> EmbeddedClient:
    client: EmbeddedClient = request.app.state.client
    return client


@router.get("/", include_in_schema=False)
def runs_list(
    request: Request,
    state: list[StateType] = Query(default=[]),
    flow: str | None = None,
    deployment: uuid.UUID | None = None,
    pool: str | None = None,
    tag: list[str] = Query(default=[]),
    since: str | None = None,
    name: str | None = None,
    all: bool = False,
    page_number: int = Query(default=1, alias="page", ge=1),
) -> Response:
    """Root runs, newest first, each with its children counted by state."""
    client = store(request)
    filters: dict[str, Any] = dict(
        state_types=state or None,
        flow_name=flow or None,
        deployment_id=deployment,
        work_pool_name=pool or None,
        tags=tag or None,
        name_contains=name or None,
        root_only=not all,
    )
    if since in RANGES:
        filters["created_after"] = _clock.now() - RANGES[since]
    runs = client.read_flow_runs(limit=PAGE_SIZE + 1, offset=(page_number - 1) * PAGE_SIZE,
                                 **filters)
    more = len(runs) > PAGE_SIZE
    runs = runs[:PAGE_SIZE]
    summaries = _summaries(client, runs)
    template = "runs_table.html" if request.headers.get("hx-target") == "runs" else "runs.html"
    return page(
        request, template, runs=runs, summaries=summaries, more=more, page=page_number,
        flows=[summary.name for summary in client.read_flows(recent=0)],
        filters=dict(state=[s.value for s in state], flow=flow, deployment=deployment,
                     pool=pool, tag=tag, since=since, name=name, all=all),
        ranges=list(RANGES), now=_clock.now(),
    )


@router.post("/runs/cancel", include_in_schema=False,
             dependencies=[Depends(require_same_origin)])
def cancel_runs(request: Request, form: FormFields) -> Response:
    """Cancel the selected runs (each with its descendants)."""
    try:
        ids = [uuid.UUID(value) for value in form.get("run", [])]
    except ValueError:
        return page(request, "notice.html", message="A selected run id is not a run id.")
    if not ids:
        return page(request, "notice.html", message="Select the runs to cancel first.")
    client = store(request)
    problems = []
    for run_id in ids:
        try:
            client.cancel_flow_run(run_id, descendants=True)
        except AnabranchError as exc:
            problems.append(str(exc))
    return page(request, "notice.html", message=(
        "; ".join(problems) or f"Cancelling {len(ids)} run{'s' if len(ids) != 1 else ''}."
    ))


@router.get("/runs/{run_id}", include_in_schema=False)
def run_page(request: Request, run_id: uuid.UUID, tab: str | None = None) -> Response:
    """A flow run: what it is, where it ran, its parents, its children (failed first)."""
    client = store(request)
    try:
        run = client.read_flow_run(run_id)
    except ObjectNotFound as exc:
        return page(request, "missing.html", status_code=404, message=str(exc))
    (summary,) = client.summarize_children(flow_run_ids=[run_id], by_flow=True)
    failed = client.read_flow_runs(
        parent_flow_run_id=run_id, state_types=[StateType.FAILED, StateType.CRASHED],
        limit=PAGE_SIZE,
    )
    failed_tasks = client.read_task_runs(
        flow_run_id=run_id, state_types=[StateType.FAILED, StateType.CRASHED], limit=PAGE_SIZE
    )
    context: dict[str, Any] = dict(
        run=run, summary=summary, failed=failed, failed_tasks=failed_tasks,
        parents=_parents(client, run), tab=tab if tab in TABS else _first_tab(summary),
        tabs=TABS, now=_clock.now(), deployment=_deployment_of(client, run),
    )
    if request.headers.get("hx-target") == "run-header":
        return page(request, "run_header.html", **context)
    context.update(_notifications(client, run))
    # The first screen shows the tab's first page at once, not after a second request.
    if context["tab"] == "children":
        context.update(_children_page(client, run_id, 1), parent_id=run_id, depth=0)
    elif context["tab"] == "task-runs":
        context.update(_task_runs_page(client, run_id, 1), parent_id=run_id)
    return page(request, "run.html", **context)


@router.get("/runs/{run_id}/children", include_in_schema=False)
def children(
    request: Request, run_id: uuid.UUID, page_number: int = Query(default=1, alias="page", ge=1),
    depth: int = 0,
) -> Response:
    """One page of a run's subflow runs, failed first, each expandable one level."""
    return page(request, "children.html", parent_id=run_id, depth=depth, now=_clock.now(),
                **_children_page(store(request), run_id, page_number))


@router.get("/runs/{run_id}/task-runs", include_in_schema=False)
def task_runs(
    request: Request, run_id: uuid.UUID, page_number: int = Query(default=1, alias="page", ge=1)
) -> Response:
    """One page of a run's task runs, failed first."""
    return page(request, "task_runs.html", parent_id=run_id, now=_clock.now(),
                **_task_runs_page(store(request), run_id, page_number))


@router.get("/runs/{run_id}/logs", include_in_schema=False)
def logs(
    request: Request,
    run_id: uuid.UUID,
    level: str = "debug",
    q: str | None = None,
    subflows: bool = False,
    page_number: int = Query(default=1, alias="page", ge=1),
    download: bool = False,
    follow: bool = False,
) -> Response:
    """A run's log lines (level, text, with or without its subflows'), paged or whole."""
    client = store(request)
    query: dict[str, Any] = dict(
        flow_run_id=run_id, min_level=LEVELS.get(level, 0), text=q or None,
        include_subflows=subflows,
    )
    if download:
        lines = client.read_logs(**query)
        text = "".join(
            f"{line.timestamp.isoformat()} {_level_name(line.level)} {line.name} "
            f"{line.message}\n" for line in lines
        )
        return PlainTextResponse(text, headers={
            "content-disposition": f'attachment; filename="flow-run-{run_id}.log"'
        })
    if follow:
        # Following: the newest lines, as a tail shows them.
        lines = client.read_logs(limit=LOG_PAGE_SIZE, newest_first=True, **query)[::-1]
        more, page_number = False, 1
    else:
        found = client.read_logs(limit=LOG_PAGE_SIZE + 1,
                                 offset=(page_number - 1) * LOG_PAGE_SIZE, **query)
        lines, more = found[:LOG_PAGE_SIZE], len(found) > LOG_PAGE_SIZE
    return page(
        request, "logs.html", run_id=run_id, lines=lines, more=more, page=page_number,
        level=level, q=q or "", subflows=subflows, follow=follow, levels=list(LEVELS),
        level_name=_level_name,
    )


@router.get("/runs/{run_id}/notifications", include_in_schema=False)
def notifications(request: Request, run_id: uuid.UUID) -> Response:
    """The run's notifications section again: the automations' firings about it."""
    client = store(request)
    try:
        run = client.read_flow_run(run_id)
    except ObjectNotFound as exc:
        return page(request, "notice.html", message=str(exc))
    return page(request, "run_notifications.html", run=run, **_notifications(client, run))


@router.get("/runs/{run_id}/timeline.json", include_in_schema=False)
def timeline(request: Request, run_id: uuid.UUID) -> Response:
    """Every task run and subflow run of a run as bars: the timeline draws the ones in view."""
    client = store(request)
    rows: list[dict[str, Any]] = []
    for child in client.read_flow_runs(parent_flow_run_id=run_id):
        rows.append(_bar(child, "flow", f"/runs/{child.id}"))
    for task in client.read_task_runs(flow_run_id=run_id):
        rows.append(_bar(task, "task", f"/task-runs/{task.id}"))
    rows.sort(key=lambda row: (row["start"] is None, row["start"] or "", row["name"]))
    return JSONResponse({"now": _clock.now().isoformat(), "rows": rows})


@router.post("/runs/{run_id}/cancel", include_in_schema=False,
             dependencies=[Depends(require_same_origin)])
def cancel_run(request: Request, run_id: uuid.UUID) -> Response:
    """Cancel a run and its descendants."""
    try:
        store(request).cancel_flow_run(run_id, descendants=True)
        message = "Cancelling the run and its descendants."
    except AnabranchError as exc:
        message = str(exc)
    return page(request, "notice.html", message=message)


@router.post("/runs/{run_id}/run-again", include_in_schema=False,
             dependencies=[Depends(require_same_origin)])
def run_again(request: Request, run_id: uuid.UUID) -> Response:
    """A new run of the run's deployment with the same parameters."""
    client = store(request)
    run = client.read_flow_run(run_id)
    if run.deployment_id is None:
        return page(request, "notice.html", message="Only a deployment's run can run again.")
    new = client.create_flow_run_from_deployment(
        run.deployment_id, DeploymentRunRequest(parameters=run.parameters, tags=run.tags)
    )
    return Response(status_code=204, headers={"hx-redirect": f"/runs/{new.id}"})


@router.get("/task-runs/{task_run_id}", include_in_schema=False)
def task_run_page(request: Request, task_run_id: uuid.UUID) -> Response:
    """A task run: its state history with messages, logs, cache key, result reference."""
    client = store(request)
    try:
        run = client.read_task_run(task_run_id)
    except ObjectNotFound as exc:
        return page(request, "missing.html", status_code=404, message=str(exc))
    flow_run = client.read_flow_run(run.flow_run_id) if run.flow_run_id else None
    return page(
        request, "task_run.html", run=run, flow_run=flow_run,
        states=client.read_states(task_run_id),
        lines=client.read_logs(task_run_id=task_run_id, limit=LOG_PAGE_SIZE),
        level_name=_level_name, now=_clock.now(),
    )


def _children_page(client: EmbeddedClient, run_id: uuid.UUID, number: int) -> dict[str, Any]:
    """One page of a run's child flow runs, failed first, with their own children counted."""
    runs = client.read_flow_runs(
        parent_flow_run_id=run_id, failed_first=True, limit=PAGE_SIZE + 1,
        offset=(number - 1) * PAGE_SIZE,
    )
    shown = runs[:PAGE_SIZE]
    return dict(runs=shown, summaries=_summaries(client, shown), more=len(runs) > PAGE_SIZE,
                page=number)


def _task_runs_page(client: EmbeddedClient, run_id: uuid.UUID, number: int) -> dict[str, Any]:
    """One page of a run's task runs, failed first."""
    runs = client.read_task_runs(
        flow_run_id=run_id, failed_first=True, limit=PAGE_SIZE + 1,
        offset=(number - 1) * PAGE_SIZE,
    )
    return dict(runs=runs[:PAGE_SIZE], more=len(runs) > PAGE_SIZE, page=number)


def _notifications(client: EmbeddedClient, run: FlowRun) -> dict[str, Any]:
    """The firings about a run, and whether its section should look again every few seconds
    (an action still in flight, or the run just ended); otherwise the section looks again
    only when the run changes."""
    firings = client.read_automation_firings(flow_run_id=run.id)
    in_flight = any(action.status in ("pending", "running")
                    for firing in firings for action in firing.actions)
    just_ended = run.end_time is not None and _clock.now() - run.end_time < NOTIFYING
    return dict(firings=firings, watch_firings=in_flight or just_ended)


def _first_tab(summary: ChildSummary) -> str:
    """The tab that says most about a run: its children, else its task runs, else its logs
    (where a run without children says what it did and why it failed)."""
    if summary.subflows.total:
        return "children"
    return "task-runs" if summary.task_runs.total else "logs"


def _summaries(client: EmbeddedClient, runs: list[FlowRun]) -> dict[uuid.UUID, Any]:
    if not runs:
        return {}
    found = client.summarize_children(flow_run_ids=[run.id for run in runs])
    return {summary.flow_run_id: summary for summary in found}


def _parents(client: EmbeddedClient, run: FlowRun) -> list[FlowRun]:
    """The chain of parents, root first (bounded, in case of a cycle in bad data)."""
    chain: list[FlowRun] = []
    parent_id = run.parent_flow_run_id
    while parent_id is not None and len(chain) < 50:
        try:
            parent = client.read_flow_run(parent_id)
        except ObjectNotFound:
            break
        chain.append(parent)
        parent_id = parent.parent_flow_run_id
    return chain[::-1]


def _deployment_of(client: EmbeddedClient, run: FlowRun) -> Any:
    if run.deployment_id is None:
        return None
    try:
        return client.read_deployment(run.deployment_id)
    except ObjectNotFound:
        return None


def _bar(run: FlowRun | TaskRun, kind: str, link: str) -> dict[str, Any]:
    state = run.state
    return {
        "id": str(run.id),
        "name": run.name,
        "kind": kind,
        "state": state.type.value if state else "PENDING",
        "start": run.start_time.isoformat() if run.start_time else None,
        "end": run.end_time.isoformat() if run.end_time else None,
        "link": link,
    }


def _level_name(level: int) -> str:
    for name, value in sorted(LEVELS.items(), key=lambda item: -item[1]):
        if level >= value:
            return name.upper()
    return "DEBUG"

