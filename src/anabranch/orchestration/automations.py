"""Automations as stored: creating, changing, pausing and reading them, and their firings.

Notification URLs and webhook headers carry secrets (a Slack webhook URL is one), so every
read that leaves the store masks them; an update that sends a masked value back keeps the
stored secret, so ``read -> change -> update`` never overwrites a secret with its mask.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch._redact import MASK, is_masked, mask_action
from anabranch._sealed import UnsealError, seal, unseal
from anabranch._validation import check_name
from anabranch.database.models import automation as automation_table
from anabranch.database.models import (
    automation_action,
    automation_bucket,
    automation_firing,
)
from anabranch.exceptions import ObjectAlreadyExists, ObjectNotFound
from anabranch.schemas.automations import (
    ActionOutcome,
    AutomationFiring,
    AutomationSpec,
    StoredAutomation,
)

_FIRINGS_LIMIT = 500


def create_automation(
    conn: Connection, automation: AutomationSpec, *, now: datetime
) -> StoredAutomation:
    """Store a new automation; its name must be new."""
    check_name(automation.name, "automation")
    for index, action in enumerate(automation.model_dump(mode="json")["actions"]):
        if _masked_values(action):
            raise ValueError(
                f"Action {index + 1} of automation {automation.name!r} holds a masked value "
                "(***), as reads show secrets; give the real URL or header."
            )
    if _row(conn, automation.name) is not None:
        raise ObjectAlreadyExists(
            f"An automation named {automation.name!r} exists already; change it with "
            "`Automation.read(name)` then `.update()`, or delete it first."
        )
    stored = StoredAutomation(**automation.model_dump(), created=now, updated=now)
    conn.execute(sa.insert(automation_table).values(**_values(stored), id=stored.id, created=now))
    return _masked(stored)


def read_automation(conn: Connection, name: str) -> StoredAutomation:
    """One automation by name, secrets masked."""
    return _masked(_stored(conn, name))


def read_automations(conn: Connection) -> list[StoredAutomation]:
    """Every automation, by name, secrets masked."""
    rows = conn.execute(sa.select(automation_table).order_by(automation_table.c.name)).mappings()
    return [_masked(_automation(row)) for row in rows]


def update_automation(
    conn: Connection, name: str, automation: AutomationSpec, *, now: datetime
) -> StoredAutomation:
    """Replace an automation's declaration (it may be renamed); masked secrets sent back
    keep the stored ones. Its open windows start afresh."""
    current = _stored(conn, name)
    check_name(automation.name, "automation")
    if automation.name != name and _row(conn, automation.name) is not None:
        raise ObjectAlreadyExists(
            f"Can not rename automation {name!r} to {automation.name!r}: that name is taken."
        )
    declared = automation.model_dump(mode="json")
    olds = _padded(current, len(declared["actions"]))
    declared["actions"] = [
        _keep_secrets(new, old) for new, old in zip(declared["actions"], olds, strict=True)
    ]
    updated = StoredAutomation(
        **AutomationSpec.model_validate(declared).model_dump(),
        id=current.id,
        created=current.created,
        updated=now,
    )
    conn.execute(
        sa.update(automation_table)
        .where(automation_table.c.id == current.id)
        .values(_values(updated))
    )
    _forget_windows(conn, current.id)
    return _masked(updated)


def set_automation_enabled(
    conn: Connection, name: str, enabled: bool, *, now: datetime
) -> StoredAutomation:
    """Pause (``enabled=False``) or resume an automation; a paused one forgets its windows."""
    current = _stored(conn, name)
    conn.execute(
        sa.update(automation_table)
        .where(automation_table.c.id == current.id)
        .values(enabled=enabled, updated=now)
    )
    if not enabled:
        _forget_windows(conn, current.id)
    return _masked(current.model_copy(update={"enabled": enabled, "updated": now}))


def delete_automation(conn: Connection, name: str) -> None:
    """Delete an automation, its windows and its firings' actions not yet carried out."""
    current = _stored(conn, name)
    _forget_windows(conn, current.id)
    firings = sa.select(automation_firing.c.id).where(
        automation_firing.c.automation_id == current.id
    )
    conn.execute(
        sa.delete(automation_action).where(
            automation_action.c.firing_id.in_(firings),
            automation_action.c.status.in_(("pending", "running")),
        )
    )
    conn.execute(sa.delete(automation_table).where(automation_table.c.id == current.id))


def read_automation_firings(
    conn: Connection,
    *,
    automation_name: str | None = None,
    flow_run_id: uuid.UUID | None = None,
    limit: int = 50,
) -> list[AutomationFiring]:
    """Firings, newest first, of one automation or about one flow run, with where each of
    their actions stands."""
    query = sa.select(automation_firing, automation_table.c.name.label("automation_name")).join(
        automation_table, automation_table.c.id == automation_firing.c.automation_id, isouter=True
    )
    if automation_name is not None:
        query = query.where(automation_firing.c.automation_id == _stored(conn, automation_name).id)
    if flow_run_id is not None:
        query = query.where(automation_firing.c.flow_run_id == flow_run_id)
    query = query.order_by(automation_firing.c.fired.desc()).limit(
        max(1, min(limit, _FIRINGS_LIMIT))
    )
    rows = conn.execute(query).mappings().all()
    outcomes: dict[uuid.UUID, list[ActionOutcome]] = {row["id"]: [] for row in rows}
    if rows:
        actions = conn.execute(
            sa.select(automation_action)
            .where(automation_action.c.firing_id.in_(list(outcomes)))
            .order_by(automation_action.c.index)
        ).mappings()
        for action in actions:
            outcomes[action["firing_id"]].append(
                ActionOutcome(
                    index=action["index"],
                    type=action["action"].get("type", "?"),
                    status=action["status"],
                    attempts=action["attempts"],
                    error=action["error"],
                    finished=action["finished"],
                )
            )
    return [
        AutomationFiring(
            id=row["id"],
            automation_id=row["automation_id"],
            automation_name=row["automation_name"] or "(deleted)",
            fired=row["fired"],
            reason=row["reason"],
            event=row["event"],
            flow_run_id=row["flow_run_id"],
            actions=outcomes[row["id"]],
        )
        for row in rows
    ]


def enabled_automations(conn: Connection) -> list[StoredAutomation]:
    """The automations to evaluate (their secrets sealed)."""
    rows = conn.execute(
        sa.select(automation_table).where(automation_table.c.enabled.is_(True))
    ).mappings()
    return [_automation(row) for row in rows]


def automation_by_id(conn: Connection, automation_id: uuid.UUID) -> StoredAutomation | None:
    """An automation by id (its secrets sealed), None once deleted."""
    row = (
        conn.execute(sa.select(automation_table).where(automation_table.c.id == automation_id))
        .mappings()
        .first()
    )
    return None if row is None else _automation(row)


def _stored(conn: Connection, name: str) -> StoredAutomation:
    row = _row(conn, name)
    if row is None:
        raise ObjectNotFound(f"No automation named {name!r}; `anabranch automation ls` lists them.")
    return _automation(row)


def _row(conn: Connection, name: str) -> Any:
    return (
        conn.execute(sa.select(automation_table).where(automation_table.c.name == name))
        .mappings()
        .first()
    )


def _automation(row: Any) -> StoredAutomation:
    """The stored automation, its actions' secrets sealed (reads mask them, the evaluation
    does not need them, and delivery unseals each as it sends)."""
    return StoredAutomation.model_validate(
        {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "enabled": row["enabled"],
            "trigger": row["trigger"],
            "actions": row["actions"],
            "created": row["created"],
            "updated": row["updated"],
        }
    )


def _values(stored: StoredAutomation) -> dict[str, Any]:
    dumped = stored.model_dump(mode="json")
    return {
        "name": stored.name,
        "description": stored.description,
        "enabled": stored.enabled,
        "trigger": dumped["trigger"],
        "actions": [_with_secrets(action, seal) for action in dumped["actions"]],
        "updated": stored.updated,
    }


def _with_secrets(action: dict[str, Any], change: Callable[[str], str]) -> dict[str, Any]:
    """``action`` (as JSON) with ``change`` applied to its URL and its header values."""
    changed = dict(action)
    if isinstance(changed.get("url"), str):
        changed["url"] = change(changed["url"])
    if isinstance(changed.get("headers"), dict):
        changed["headers"] = {k: change(v) for k, v in changed["headers"].items()}
    return changed


def _masked(stored: StoredAutomation) -> StoredAutomation:
    dumped = stored.model_dump(mode="json")
    dumped["actions"] = [
        mask_action(_with_secrets(action, _unsealed_or_mask)) for action in dumped["actions"]
    ]
    return StoredAutomation.model_validate(dumped)


def _unsealed_or_mask(text: str) -> str:
    """A sealed secret in the clear (to be masked), or just the mask when this process
    has another key."""
    try:
        return unseal(text)
    except UnsealError:
        return MASK


def _padded(current: StoredAutomation, count: int) -> list[dict[str, Any] | None]:
    old: list[dict[str, Any] | None] = [a.model_dump(mode="json") for a in current.actions]
    return (old + [None] * count)[:count]


def _keep_secrets(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """``new`` with each masked URL or header value replaced by the stored one it masks."""
    if old is None or old.get("type") != new.get("type"):
        return new
    kept = dict(new)
    if isinstance(new.get("url"), str) and is_masked(new["url"]):
        kept["url"] = old.get("url", new["url"])
    if isinstance(new.get("headers"), dict):
        old_headers = old.get("headers") or {}
        kept["headers"] = {
            key: old_headers.get(key, value) if is_masked(value) else value
            for key, value in new["headers"].items()
        }
    return kept


def _masked_values(action: dict[str, Any]) -> bool:
    headers = action.get("headers") or {}
    return is_masked(action.get("url")) or any(is_masked(v) for v in headers.values())


def _forget_windows(conn: Connection, automation_id: uuid.UUID) -> None:
    conn.execute(
        sa.delete(automation_bucket).where(automation_bucket.c.automation_id == automation_id)
    )
