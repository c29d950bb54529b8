"""Evaluating automations' triggers over the event feed, once per event.

One replica at a time evaluates (it holds the ``automations`` service row for a lease, and
on PostgreSQL that row is locked for the transaction), in one transaction per round: the
events read, the windows counted, the firings stored with their actions and the new place
in the feed commit together. A round that fails (the server killed, the database gone)
leaves nothing half-done, and the next round (this replica's or another's) takes the same
events again. A firing's key makes storing it twice impossible anyway.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch._ids import new_id
from anabranch.database.models import (
    automation,
    automation_action,
    automation_bucket,
    automation_firing,
    event,
    service_state,
)
from anabranch.database.upserts import upsert_into
from anabranch.orchestration.automations import enabled_automations
from anabranch.orchestration.events import (
    committed_after,
    emit,
    end_position,
    flow_run_of,
    read_new_events,
)
from anabranch.schemas.automations import EventTrigger, StoredAutomation
from anabranch.schemas.events import RESOURCE_ID, RESOURCE_NAME, RESOURCE_ROLE, Event, label_matches

SERVICE = "automations"
# Events taken in one round; the rest wait for the next (a round is one transaction).
ROUND_EVENTS = 1000


def has_trigger_work(conn: Connection, *, now: datetime) -> bool:
    """Whether a round would have anything to do: events past the stored place, or an open
    window whose time is up. A cheap read, so idle servers write nothing."""
    if conn.execute(
        sa.select(automation.c.id).where(automation.c.enabled.is_(True)).limit(1)
    ).first() is None:
        return False  # the lease's renewal rounds move the place on meanwhile
    row = conn.execute(
        sa.select(service_state.c.position).where(service_state.c.name == SERVICE)
    ).first()
    if row is None or row.position is None:
        return True
    newer = sa.select(event.c.seq).where(*committed_after(conn, row.position)).limit(1)
    if conn.execute(newer).first() is not None:
        return True
    due = sa.select(automation_bucket.c.key).where(automation_bucket.c.deadline <= now).limit(1)
    return conn.execute(due).first() is not None


def evaluate_triggers(
    conn: Connection, *, holder: str, now: datetime, lease_seconds: float = 15.0
) -> int | None:
    """One round: the events since the stored place and the windows whose time is up;
    the number of firings, or None when another replica holds the service."""
    position = _take_service(conn, holder, now, lease_seconds)
    if position is None:
        return None
    automations = enabled_automations(conn)
    if not automations:
        # Nothing to evaluate: skip the events rather than read them.
        _save_position(conn, end_position(conn))
        return 0
    patterns = [t.expect | t.after for t in (a.trigger for a in automations)]

    def wanted(name: str) -> bool:
        return any(not named or _named(named, name, empty_means_any=True) for named in patterns)

    events, new_position = read_new_events(conn, position, ROUND_EVENTS, wanted)
    fired = 0
    for _, happened in events:
        for automation_ in automations:
            if automation_.created <= happened.occurred + _CLOCK_SLACK:
                fired += _consider(conn, automation_, happened, now)
    fired += _close_windows(conn, automations, now)
    _open_standing_windows(conn, automations, now)
    _save_position(conn, new_position)
    return fired


def _save_position(conn: Connection, position: dict[str, int]) -> None:
    conn.execute(
        sa.update(service_state).where(service_state.c.name == SERVICE).values(position=position)
    )


# Events that occurred a little before an automation was made still count for it: the
# clocks of the processes that write events may run a little behind the server's.
_CLOCK_SLACK = timedelta(seconds=5)


def _take_service(
    conn: Connection, holder: str, now: datetime, lease_seconds: float
) -> dict[str, int] | None:
    """Hold the service for ``lease_seconds`` more and return the place in the feed, or
    None when another live replica holds it."""
    conn.execute(
        upsert_into(conn.dialect.name, service_state)
        .values(name=SERVICE, holder=None, expires_at=None, position=end_position(conn))
        .on_conflict_do_nothing(index_elements=["name"])
    )
    row = (
        conn.execute(
            sa.select(service_state).where(service_state.c.name == SERVICE).with_for_update()
        )
        .mappings()
        .one()
    )
    if row["holder"] not in (None, holder) and row["expires_at"] > now:
        return None
    conn.execute(
        sa.update(service_state)
        .where(service_state.c.name == SERVICE)
        .values(holder=holder, expires_at=now + timedelta(seconds=lease_seconds))
    )
    return row["position"] or end_position(conn)


def _consider(
    conn: Connection, automation_: StoredAutomation, happened: Event, now: datetime
) -> int:
    trigger = automation_.trigger
    if happened.resource.id == f"anabranch.automation.{automation_.id}":
        return 0  # its own firings and outcomes: reacting to them would never end
    expected = _named(trigger.expect, happened.event, empty_means_any=True)
    opens = _named(trigger.after, happened.event, empty_means_any=False)
    if not (expected or opens) or not _fits(trigger, happened):
        return 0
    key = _key(trigger, happened)
    bucket = _bucket(conn, automation_.id, key)
    if trigger.posture == "Proactive":
        if opens and bucket is None:
            # The event that opens a window is not one of those it waits for.
            deadline = happened.occurred + trigger.within
            _save_bucket(conn, automation_.id, key, happened.occurred, deadline, 0, happened)
        elif expected and bucket is not None:
            if bucket["count"] + 1 >= trigger.threshold and trigger.after:
                _drop_bucket(conn, automation_.id, key)  # satisfied: nothing to tell
            else:
                _save_bucket(
                    conn,
                    automation_.id,
                    key,
                    bucket["opened"],
                    bucket["deadline"],
                    bucket["count"] + 1,
                    bucket["event"],
                )
        return 0
    if trigger.after:
        if opens and bucket is None:
            _save_bucket(conn, automation_.id, key, happened.occurred, None, 0, happened)
            bucket = _bucket(conn, automation_.id, key)
        if not expected or bucket is None:
            return 0
    elif trigger.threshold == 1:
        return _fire(
            conn, automation_, f"event:{happened.id}", _reason(trigger, happened), happened, now
        )
    opened, count = happened.occurred, 0
    if bucket is not None and not _expired(trigger, bucket["opened"], happened.occurred):
        opened, count = bucket["opened"], bucket["count"]
    count += 1
    if count < trigger.threshold:
        _save_bucket(conn, automation_.id, key, opened, None, count, happened)
        return 0
    _drop_bucket(conn, automation_.id, key)
    return _fire(
        conn,
        automation_,
        f"window:{key}:{opened.isoformat()}:{happened.id}",
        _reason(trigger, happened),
        happened,
        now,
    )


def _close_windows(conn: Connection, automations: list[StoredAutomation], now: datetime) -> int:
    """Proactive windows whose time is up: fire for those that saw too few events."""
    by_id = {a.id: a for a in automations}
    due = (
        conn.execute(sa.select(automation_bucket).where(automation_bucket.c.deadline <= now))
        .mappings()
        .all()
    )
    fired = 0
    for bucket in due:
        _drop_bucket(conn, bucket["automation_id"], bucket["key"])
        automation_ = by_id.get(bucket["automation_id"])
        if automation_ is None or bucket["count"] >= automation_.trigger.threshold:
            continue
        opened_by = Event.model_validate(bucket["event"]) if bucket["event"] else None
        within = automation_.trigger.within.total_seconds()
        expected = ", ".join(sorted(automation_.trigger.expect)) or "any event"
        reason = (
            f"Expected {expected} within {within:g} s"
            + (f" after {opened_by.event} of {opened_by.resource.id}" if opened_by else "")
            + f"; {bucket['count']} arrived."
        )
        key = f"proactive:{bucket['key']}:{bucket['opened'].isoformat()}"
        fired += _fire(conn, automation_, key, reason, opened_by, now)
    return fired


def _open_standing_windows(
    conn: Connection, automations: list[StoredAutomation], now: datetime
) -> None:
    """A proactive trigger without ``after`` watches back-to-back windows of ``within``
    from when it is evaluated first: open the next one where none is open."""
    for automation_ in automations:
        trigger = automation_.trigger
        standing = trigger.posture == "Proactive" and not trigger.after
        if standing and _bucket(conn, automation_.id, "") is None:
            _save_bucket(conn, automation_.id, "", now, now + trigger.within, 0, None)


def _fire(
    conn: Connection,
    automation_: StoredAutomation,
    key: str,
    reason: str,
    happened: Event | None,
    now: datetime,
) -> int:
    """Store a firing and its actions (once per key); 1 if it is new."""
    firing_id = new_id()
    flow_run_id = flow_run_of(happened) if happened is not None else None
    inserted = conn.execute(
        upsert_into(conn.dialect.name, automation_firing)
        .values(
            id=firing_id,
            automation_id=automation_.id,
            key=key[:1000],
            fired=now,
            reason=reason,
            event=happened.model_dump(mode="json") if happened is not None else None,
            flow_run_id=flow_run_id,
        )
        .on_conflict_do_nothing(index_elements=["automation_id", "key"])
    ).rowcount
    if not inserted:
        return 0
    conn.execute(
        sa.insert(automation_action),
        [
            {
                "id": new_id(),
                "firing_id": firing_id,
                "index": index,
                "action": action.model_dump(mode="json"),
                "status": "pending",
                "attempts": 0,
                "next_attempt": now,
            }
            for index, action in enumerate(automation_.actions)
        ],
    )
    related = (
        []
        if happened is None
        else [{**happened.resource.root, RESOURCE_ROLE: "triggering-resource"}]
    )
    emit(
        conn,
        "anabranch.automation.triggered",
        automation_resource(automation_),
        now=now,
        related=related,
        payload={
            "firing_id": str(firing_id),
            "reason": reason,
            "triggering_event": None if happened is None else happened.event,
        },
    )
    return 1


def automation_resource(automation_: StoredAutomation) -> dict[str, str]:
    return {RESOURCE_ID: f"anabranch.automation.{automation_.id}", RESOURCE_NAME: automation_.name}


def _reason(trigger: EventTrigger, happened: Event) -> str:
    name = happened.resource.name
    about = f"{happened.resource.id}" + (f" ({name})" if name else "")
    if trigger.threshold == 1:
        return f"{happened.event} of {about}."
    return f"{trigger.threshold} matching events, the last {happened.event} of {about}."


def _named(patterns: set[str], name: str, *, empty_means_any: bool) -> bool:
    if not patterns:
        return empty_means_any
    return any(label_matches(pattern, name) for pattern in patterns)


def _fits(trigger: EventTrigger, happened: Event) -> bool:
    """Whether the event's resource fits ``match`` and its related resources fit every
    specification of ``match_related`` (each met by one related resource)."""
    if not _labels_fit(trigger.match, happened.resource.root):
        return False
    return all(
        any(_labels_fit(spec, related.root) for related in happened.related)
        for spec in trigger.related_specs
        if spec
    )


def _labels_fit(spec: dict[str, str | list[str]], labels: dict[str, str]) -> bool:
    for label, wanted in spec.items():
        patterns = [wanted] if isinstance(wanted, str) else wanted
        if not any(label_matches(pattern, labels.get(label)) for pattern in patterns):
            return False
    return True


def _key(trigger: EventTrigger, happened: Event) -> str:
    if trigger.posture == "Proactive" and not trigger.after:
        return ""  # one standing window (_open_standing_windows)
    return "|".join(
        f"{label}={happened.resource.get(label, '')}" for label in sorted(trigger.for_each)
    )


def _expired(trigger: EventTrigger, opened: datetime, occurred: datetime) -> bool:
    return bool(trigger.within) and occurred - opened > trigger.within


def _bucket(conn: Connection, automation_id: uuid.UUID, key: str) -> Any:
    return (
        conn.execute(
            sa.select(automation_bucket).where(
                automation_bucket.c.automation_id == automation_id, automation_bucket.c.key == key
            )
        )
        .mappings()
        .first()
    )


def _save_bucket(
    conn: Connection,
    automation_id: uuid.UUID,
    key: str,
    opened: datetime,
    deadline: datetime | None,
    count: int,
    happened: Event | dict[str, Any] | None,
) -> None:
    stored = happened.model_dump(mode="json") if isinstance(happened, Event) else happened
    values = {"opened": opened, "deadline": deadline, "count": count, "event": stored}
    conn.execute(
        upsert_into(conn.dialect.name, automation_bucket)
        .values(automation_id=automation_id, key=key, **values)
        .on_conflict_do_update(index_elements=["automation_id", "key"], set_=values)
    )


def _drop_bucket(conn: Connection, automation_id: uuid.UUID, key: str) -> None:
    conn.execute(
        sa.delete(automation_bucket).where(
            automation_bucket.c.automation_id == automation_id, automation_bucket.c.key == key
        )
    )
