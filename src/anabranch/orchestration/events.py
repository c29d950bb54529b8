"""Events: storing the ones code emits, reading them all (state changes' events completed
from their runs), following the feed in commit order, and forgetting old ones.

A state change's event row is written by the database (a trigger on ``run_state``) with its
name and resource id only, so the task hot path writes nothing more; its labels (the run's
name and state, its flow, deployment, work pool, queue, tags and parent) and its payload
(the state) are read from the run and the state when the event is read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch.database.models import deployment, event, flow_run, run_state, task_run
from anabranch.database.upserts import upsert_into
from anabranch.schemas.events import (
    RESOURCE_ID,
    RESOURCE_NAME,
    RESOURCE_ROLE,
    Event,
    EventPage,
    label_matches,
)

FLOW_RUN = "anabranch.flow-run."
TASK_RUN = "anabranch.task-run."
# The most events one read returns, and reads to fill a page filtered by related resources.
MAX_PAGE = 1000
MAX_SCAN = 20_000


def emit_events(conn: Connection, events: Sequence[Event], *, now: datetime) -> None:
    """Store events; one whose id is stored already is skipped (a re-sent request)."""
    if not events:
        return
    rows = [
        {
            "id": e.id,
            "occurred": e.occurred,
            "event": e.event,
            "resource_id": e.resource.id,
            "resource": e.resource.root,
            "related": [r.root for r in e.related],
            "payload": e.payload,
        }
        for e in events
    ]
    conn.execute(
        upsert_into(conn.dialect.name, event).on_conflict_do_nothing(index_elements=["id"]), rows
    )


def emit(
    conn: Connection,
    name: str,
    resource: dict[str, str],
    *,
    now: datetime,
    related: Iterable[dict[str, str]] = (),
    payload: dict[str, Any] | None = None,
) -> None:
    """Store one event the orchestration itself tells (a worker online, a deployment
    paused, an action's outcome)."""
    emit_events(
        conn,
        [
            Event.model_validate(
                {
                    "occurred": now,
                    "event": name,
                    "resource": resource,
                    "related": list(related),
                    "payload": payload or {},
                }
            )
        ],
        now=now,
    )


def read_events(
    conn: Connection,
    *,
    event_names: list[str] | None = None,
    resource_ids: list[str] | None = None,
    related_ids: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int | None = None,
    limit: int = 100,
    newest_first: bool = False,
) -> EventPage:
    """The events ``EventOperations.read_events`` describes, as an EventPage."""
    limit = max(1, min(limit, MAX_PAGE))
    query = sa.select(event)
    if event_names:
        query = query.where(sa.or_(*(_like(event.c.event, p) for p in event_names)))
    if resource_ids:
        query = query.where(sa.or_(*(_like(event.c.resource_id, p) for p in resource_ids)))
    if since is not None:
        query = query.where(event.c.occurred >= since)
    if until is not None:
        query = query.where(event.c.occurred <= until)
    if after is not None:
        query = query.where(event.c.seq < after if newest_first else event.c.seq > after)
    query = query.order_by(event.c.seq.desc() if newest_first else event.c.seq)
    found: list[Event] = []
    last_seq: int | None = None
    # Related resources are labels of completed events: read on until the page is full, or
    # MAX_SCAN events were read (the page's ``next_after`` says where to go on).
    scan = limit if not related_ids else limit * 4
    scanned = 0
    while len(found) < limit and scanned < MAX_SCAN:
        rows = conn.execute(query.limit(scan)).mappings().all()
        scanned += len(rows)
        if not rows:
            break
        for row, complete in zip(rows, complete_events(conn, rows), strict=True):
            last_seq = row["seq"]
            if not related_ids or _related_to(complete, related_ids):
                found.append(complete)
                if len(found) == limit:
                    break
        if len(rows) < scan or not related_ids:
            break
        query = query.where(event.c.seq < last_seq if newest_first else event.c.seq > last_seq)
    end = conn.execute(sa.select(sa.func.max(event.c.seq))).scalar() or 0
    return EventPage(
        events=found, next_after=last_seq if last_seq is not None else after, end=end
    )


def read_new_events(
    conn: Connection,
    position: dict[str, int] | None,
    limit: int = MAX_PAGE,
    wanted: Callable[[str], bool] | None = None,
) -> tuple[list[tuple[int, Event]], dict[str, int]]:
    """The events committed after ``position`` in the order they were committed, with the
    position after them: for a reader that must see each event once (the automations).
    With ``wanted``, only the events whose name it accepts are completed and returned (the
    position still passes the others).

    SQLite commits one writer at a time, so the arrival order ``seq`` is the commit order.
    On PostgreSQL a transaction that took a lower ``seq`` may commit after a higher one is
    read, so only rows written by transactions older than every one still running are read
    (their ``tx`` is below the snapshot's xmin), in (tx, seq) order.
    """
    position = position if position is not None else end_position(conn)
    query = sa.select(event).where(*committed_after(conn, position))
    if conn.dialect.name == "postgresql":
        query = query.order_by(event.c.tx, event.c.seq)
    else:
        query = query.order_by(event.c.seq)
    rows = conn.execute(query.limit(limit)).mappings().all()
    if not rows:
        return [], position
    last = rows[-1]
    new_position = {"seq": last["seq"], "tx": last["tx"] or 0}
    if wanted is not None:
        rows = [row for row in rows if wanted(row["event"])]
    seqs = [row["seq"] for row in rows]
    return list(zip(seqs, complete_events(conn, rows), strict=True)), new_position


def committed_after(conn: Connection, position: dict[str, int]) -> list[Any]:
    """The conditions of the events ``read_new_events`` would read after ``position``."""
    if conn.dialect.name == "postgresql":
        settled = sa.text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        return [
            event.c.tx < settled,
            sa.tuple_(event.c.tx, event.c.seq) > sa.tuple_(position["tx"], position["seq"]),
        ]
    return [event.c.seq > position["seq"]]


def end_position(conn: Connection) -> dict[str, int]:
    """The position after every event stored now."""
    row = conn.execute(
        sa.select(event.c.seq, event.c.tx).order_by(event.c.seq.desc()).limit(1)
    ).first()
    if row is None:
        return {"seq": 0, "tx": 0}
    return {"seq": row.seq, "tx": row.tx or 0}


def trim_events(conn: Connection, *, now: datetime, retention_days: float) -> int:
    """Forget the events stored before the first one that occurred within the retention;
    how many. The newest event is always kept: on SQLite a new row's ``seq`` follows the
    highest stored one, and must not go back behind the position a reader already holds."""
    cutoff = now - timedelta(days=retention_days)
    # Read from the oldest on, this stops at the first event to keep (no index on time).
    first_kept = conn.execute(
        sa.select(event.c.seq).where(event.c.occurred >= cutoff).order_by(event.c.seq).limit(1)
    ).scalar()
    if first_kept is None:
        first_kept = conn.execute(sa.select(sa.func.max(event.c.seq))).scalar()
    if first_kept is None:
        return 0
    return conn.execute(sa.delete(event).where(event.c.seq < first_kept)).rowcount


def complete_events(conn: Connection, rows: Sequence[Any]) -> list[Event]:
    """Events from stored rows; a state change's labels and payload read from its run."""
    derived = [row for row in rows if row["resource"] is None]
    context = _StateContext(conn, derived) if derived else None
    events = []
    for row in rows:
        if row["resource"] is None:
            assert context is not None  # Invariant: made above when any row is derived
            events.append(context.event(row))
        else:
            events.append(
                Event.model_validate(
                    {
                        "id": row["id"],
                        "occurred": row["occurred"],
                        "event": row["event"],
                        "resource": row["resource"],
                        "related": row["related"] or [],
                        "payload": row["payload"] or {},
                    }
                )
            )
    return events


class _StateContext:
    """What state change events need of their runs, read in a few queries for a page."""

    def __init__(self, conn: Connection, rows: Sequence[Any]) -> None:
        flow_ids: set[uuid.UUID] = set()
        task_ids: set[uuid.UUID] = set()
        for row in rows:
            kind, run_id = run_of(row["resource_id"])
            (flow_ids if kind == "flow-run" else task_ids).add(run_id)
        self.tasks = _by_id(
            conn,
            sa.select(
                task_run.c.id,
                task_run.c.name,
                task_run.c.tags,
                task_run.c.flow_run_id,
                task_run.c.task_key,
            ).where(task_run.c.id.in_(task_ids)),
        )
        flow_ids |= {t.flow_run_id for t in self.tasks.values() if t.flow_run_id is not None}
        self.flows = _by_id(
            conn,
            sa.select(
                flow_run.c.id,
                flow_run.c.name,
                flow_run.c.flow_name,
                flow_run.c.tags,
                flow_run.c.deployment_id,
                flow_run.c.work_pool_name,
                flow_run.c.work_queue_name,
                flow_run.c.parent_flow_run_id,
            ).where(flow_run.c.id.in_(flow_ids)),
        )
        deployment_ids = {f.deployment_id for f in self.flows.values() if f.deployment_id}
        self.deployments = _by_id(
            conn,
            sa.select(deployment.c.id, deployment.c.name, deployment.c.flow_name).where(
                deployment.c.id.in_(deployment_ids)
            ),
        )
        self.states = _by_id(
            conn,
            sa.select(
                run_state.c.id,
                run_state.c.type,
                run_state.c.name,
                run_state.c.message,
                run_state.c.timestamp,
            ).where(run_state.c.id.in_([row["id"] for row in rows])),
        )

    def event(self, row: Any) -> Event:
        kind, run_id = run_of(row["resource_id"])
        resource = {RESOURCE_ID: row["resource_id"]}
        payload: dict[str, Any] = {}
        state = self.states.get(row["id"])
        if state is not None:
            resource["anabranch.state-type"] = state.type
            resource["anabranch.state-name"] = state.name
            if state.message:
                resource["anabranch.state-message"] = state.message[:1000]
            payload["validated_state"] = {
                "type": state.type,
                "name": state.name,
                "message": state.message,
                "timestamp": state.timestamp.isoformat(),
            }
        related: list[dict[str, str]] = []
        if kind == "task-run":
            task = self.tasks.get(run_id)
            flow = None
            if task is not None:
                resource[RESOURCE_NAME] = task.name
                resource["anabranch.task-key"] = task.task_key
                flow = self.flows.get(task.flow_run_id) if task.flow_run_id else None
                if task.flow_run_id is not None:
                    related.append(_run_resource(task.flow_run_id, "flow-run", flow))
                related += _tags(task.tags)
            if flow is not None:
                related += self._flow_labels(flow)
        else:
            flow = self.flows.get(run_id)
            if flow is not None:
                resource[RESOURCE_NAME] = flow.name
                related += self._flow_labels(flow)
                if flow.parent_flow_run_id is not None:
                    parent = self.flows.get(flow.parent_flow_run_id)
                    related.append(
                        _run_resource(flow.parent_flow_run_id, "parent-flow-run", parent)
                    )
                related += _tags(flow.tags)
        return Event.model_validate(
            {
                "id": row["id"],
                "occurred": row["occurred"],
                "event": row["event"],
                "resource": resource,
                "related": _unique(related),
                "payload": payload,
            }
        )

    def _flow_labels(self, flow: Any) -> list[dict[str, str]]:
        labels = [
            {
                RESOURCE_ID: f"anabranch.flow.{flow.flow_name}",
                RESOURCE_ROLE: "flow",
                RESOURCE_NAME: flow.flow_name,
            }
        ]
        dep = self.deployments.get(flow.deployment_id) if flow.deployment_id else None
        if flow.deployment_id is not None:
            labels.append(
                {
                    RESOURCE_ID: f"anabranch.deployment.{flow.deployment_id}",
                    RESOURCE_ROLE: "deployment",
                    RESOURCE_NAME: f"{dep.flow_name}/{dep.name}" if dep else "",
                }
            )
        if flow.work_pool_name:
            labels.append(
                {
                    RESOURCE_ID: f"anabranch.work-pool.{flow.work_pool_name}",
                    RESOURCE_ROLE: "work-pool",
                    RESOURCE_NAME: flow.work_pool_name,
                }
            )
            if flow.work_queue_name:
                labels.append(
                    {
                        RESOURCE_ID: "anabranch.work-queue."
                        f"{flow.work_pool_name}/{flow.work_queue_name}",
                        RESOURCE_ROLE: "work-queue",
                        RESOURCE_NAME: flow.work_queue_name,
                    }
                )
        return labels


def run_of(resource_id: str) -> tuple[str, uuid.UUID]:
    """("flow-run" or "task-run", run id) of a run's resource id."""
    if resource_id.startswith(FLOW_RUN):
        return "flow-run", uuid.UUID(resource_id[len(FLOW_RUN) :])
    return "task-run", uuid.UUID(resource_id[len(TASK_RUN) :])


def flow_run_of(event_: Event) -> uuid.UUID | None:
    """The flow run an event is about: its resource, or the flow run it is related to."""
    if event_.resource.id.startswith(FLOW_RUN):
        return _uuid_or_none(event_.resource.id[len(FLOW_RUN) :])
    related = event_.related_id("flow-run")
    return _uuid_or_none(related[len(FLOW_RUN) :]) if related else None


def _uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _run_resource(run_id: uuid.UUID, role: str, run: Any) -> dict[str, str]:
    labels = {RESOURCE_ID: f"{FLOW_RUN}{run_id}", RESOURCE_ROLE: role}
    if run is not None:
        labels[RESOURCE_NAME] = run.name
    return labels


def _tags(tags: list[str] | None) -> list[dict[str, str]]:
    return [
        {RESOURCE_ID: f"anabranch.tag.{tag}", RESOURCE_ROLE: "tag", RESOURCE_NAME: tag}
        for tag in tags or ()
    ]


def _unique(related: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: set[tuple[str, str]] = set()
    kept = []
    for labels in related:
        key = (labels[RESOURCE_ID], labels[RESOURCE_ROLE])
        if key not in seen:
            seen.add(key)
            kept.append(labels)
    return kept


def _related_to(complete: Event, ids: list[str]) -> bool:
    return any(label_matches(p, r.id) for r in complete.related for p in ids)


def _by_id(conn: Connection, query: sa.Select[Any]) -> dict[Any, Any]:
    return {row.id: row for row in conn.execute(query)}


def _like(column: sa.ColumnElement[str], pattern: str) -> sa.ColumnElement[bool]:
    if "*" not in pattern:
        return column == pattern
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped.replace("*", "%"), escape="\\")
