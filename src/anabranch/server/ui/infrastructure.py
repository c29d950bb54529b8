"""The pages of where runs run and what holds them back: work pools (queues, workers, late
runs) and concurrency limits (slots in use, holders, waiters), with their controls."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from anabranch import _clock
from anabranch.client.embedded import EmbeddedClient
from anabranch.exceptions import AnabranchError, ObjectNotFound
from anabranch.schemas import StateType
from anabranch.server.ui.render import page
from anabranch.server.ui.runs import FormFields, store
from anabranch.server.ui.session import require_same_origin

router = APIRouter()


@router.get("/work-pools", include_in_schema=False)
def work_pools(request: Request) -> Response:
    client = store(request)
    pools: list[dict[str, Any]] = []
    for pool in client.read_work_pools():
        pools.append({
            "pool": pool,
            "queues": client.read_work_queues(work_pool_name=pool.name),
            "workers": client.read_workers(pool.name),
            "waiting": client.read_flow_runs(
                work_pool_name=pool.name, state_types=[StateType.SCHEDULED], limit=1000
            ),
            # Late as the store marks it (late_runs.py), not a second rule here.
            "late": client.read_flow_runs(work_pool_name=pool.name, state_names=["Late"]),
        })
    return page(request, "work_pools.html", section="work-pools", pools=pools,
                now=_clock.now())


@router.get("/concurrency-limits", include_in_schema=False)
def limits(request: Request) -> Response:
    client = store(request)
    shown = []
    for limit in client.read_concurrency_limits():
        try:
            shown.append(client.read_concurrency_limit(limit.name))
        except AnabranchError:
            continue  # deleted meanwhile
    holders = {holder.run_id for limit in shown for holder in limit.holders if holder.run_id}
    return page(request, "limits.html", section="limits", limits=shown, now=_clock.now(),
                run_names=_run_names(client, holders))


@router.post("/concurrency-limits", include_in_schema=False,
             dependencies=[Depends(require_same_origin)])
def change_limit(request: Request, fields_sent: FormFields) -> Response:
    """Create or resize (``limit``), ``reset`` or ``delete`` a limit named in the form."""
    form = {key: values[-1] for key, values in fields_sent.items()}
    name, action = form.get("name", "").strip(), form.get("action", "save")
    client = store(request)
    try:
        if action == "reset":
            client.reset_concurrency_limit(name)
        elif action == "delete":
            client.delete_concurrency_limit(name)
        else:
            client.create_concurrency_limit(name, _size(form.get("limit", "")))
    except (AnabranchError, ValueError) as exc:
        return page(request, "notice.html", message=str(exc))
    return Response(status_code=204, headers={"hx-refresh": "true"})


@router.get("/any-run/{run_id}", include_in_schema=False)
def any_run(request: Request, run_id: uuid.UUID) -> Response:
    """A run by id, flow run or task run (a slot holder names only the id)."""
    client = store(request)
    try:
        client.read_flow_run(run_id)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)
    except ObjectNotFound:
        return RedirectResponse(f"/task-runs/{run_id}", status_code=303)


def _run_names(client: EmbeddedClient, run_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The names of the flow or task runs holding slots (a holder names only the id)."""
    names = {}
    for run_id in run_ids:
        for read in (client.read_flow_run, client.read_task_run):
            try:
                names[run_id] = read(run_id).name
                break
            except ObjectNotFound:
                continue
    return names


def _size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        raise ValueError(f"A limit's size is a whole number of slots, not {text!r}.") from None
    if size < 0:
        raise ValueError("A limit's size can not be negative.")
    return size
