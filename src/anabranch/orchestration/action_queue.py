"""Automations' actions waiting to be carried out: claiming them, recording how each went,
and the actions that act on the store itself (cancel a run, run a deployment, ...).

An action is claimed for a while (``claimed_until``) by one replica in one statement, so
any number of replicas may deliver and each action is carried out by one at a time. A
replica that dies holding a claim leaves the action to be claimed again when it lapses:
delivery is at least once. A failed attempt is tried again with back-off; after the last
attempt the action is failed, and either way its outcome is an event.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.engine import Connection

from anabranch.database.models import automation_action, automation_firing
from anabranch.database.models import flow_run as flow_run_table
from anabranch.exceptions import AnabranchError, ObjectNotFound
from anabranch.orchestration import deployments, runs
from anabranch.orchestration.automations import automation_by_id, set_automation_enabled
from anabranch.orchestration.deployment_runs import create_deployment_run
from anabranch.orchestration.events import emit, flow_run_of
from anabranch.orchestration.run_control import cancel_flow_run
from anabranch.orchestration.transitions import set_state
from anabranch.orchestration.triggers import automation_resource
from anabranch.schemas import FlowRun
from anabranch.schemas.automations import (
    Action,
    CancelFlowRun,
    ChangeFlowRunState,
    PauseAutomation,
    PauseDeployment,
    ResumeAutomation,
    ResumeDeployment,
    RunDeployment,
    StoredAutomation,
)
from anabranch.schemas.deployments import Deployment, DeploymentRunRequest, split_full_name
from anabranch.schemas.events import RESOURCE_ID, RESOURCE_ROLE, Event

_ACTION = TypeAdapter(Action)


@dataclass(frozen=True)
class ClaimedAction:
    """An action to carry out now, with what its templates may speak of."""

    id: uuid.UUID
    firing_id: uuid.UUID
    attempt: int
    action: Any
    automation: StoredAutomation | None
    event: Event | None
    flow_run: FlowRun | None
    deployment: Deployment | None


def _due(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(
        sa.and_(automation_action.c.status == "pending", automation_action.c.next_attempt <= now),
        sa.and_(automation_action.c.status == "running", automation_action.c.claimed_until < now),
    )


def has_due_actions(conn: Connection, *, now: datetime) -> bool:
    """Whether an action waits to be carried out (a cheap read before claiming)."""
    return (
        conn.execute(sa.select(automation_action.c.id).where(_due(now)).limit(1)).first()
        is not None
    )


def claim_actions(
    conn: Connection, *, now: datetime, limit: int = 20, claim_seconds: float = 60.0
) -> list[ClaimedAction]:
    """Claim up to ``limit`` actions that are due (or whose claim lapsed)."""
    due = _due(now)
    rows = conn.execute(
        sa.select(automation_action.c.id)
        .where(due)
        .order_by(automation_action.c.next_attempt)
        .limit(limit)
    ).all()
    claimed = []
    for (action_id,) in rows:
        # Judged again in the UPDATE: another replica may have claimed it meanwhile.
        taken = conn.execute(
            sa.update(automation_action)
            .where(automation_action.c.id == action_id, due)
            .values(
                status="running",
                claimed_until=now + timedelta(seconds=claim_seconds),
                attempts=automation_action.c.attempts + 1,
            )
        ).rowcount
        if taken:
            claimed.append(_claimed(conn, action_id))
    return claimed


def finish_action(
    conn: Connection,
    action_id: uuid.UUID,
    *,
    error: str | None,
    now: datetime,
    max_attempts: int,
    retry_seconds: float,
) -> str:
    """Record an attempt's outcome: done, tried again later, or failed after the last
    attempt (an event tells the first and the last); the action's new status."""
    row = (
        conn.execute(sa.select(automation_action).where(automation_action.c.id == action_id))
        .mappings()
        .first()
    )
    if row is None or row["status"] != "running":
        return "gone"
    if error is not None and row["attempts"] < max_attempts:
        delay = retry_seconds * 2 ** (row["attempts"] - 1)
        conn.execute(
            sa.update(automation_action)
            .where(automation_action.c.id == action_id)
            .values(
                status="pending",
                claimed_until=None,
                error=error[:2000],
                next_attempt=now + timedelta(seconds=delay),
            )
        )
        return "pending"
    status = "done" if error is None else "failed"
    conn.execute(
        sa.update(automation_action)
        .where(automation_action.c.id == action_id)
        .values(
            status=status,
            claimed_until=None,
            error=None if error is None else error[:2000],
            finished=now,
        )
    )
    _tell_outcome(conn, row, error, now)
    return status


def carry_out_store_action(conn: Connection, claimed: ClaimedAction, *, now: datetime) -> None:
    """Carry out an action on the store; raises AnabranchError saying why it could not."""
    action = claimed.action
    if isinstance(action, CancelFlowRun):
        cancel_flow_run(conn, _flow_run_id(claimed), now=now)
    elif isinstance(action, ChangeFlowRunState):
        state = action.state
        name = action.name or state.value.title()
        if not set_state(
            conn, flow_run_table, _flow_run_id(claimed), state, name, action.message, now=now
        ):
            raise AnabranchError(
                f"The flow run could not move to {name}: it is in a state that can not "
                "(a final state is final)."
            )
    elif isinstance(action, RunDeployment):
        target = _deployment(conn, claimed, action.name)
        request = DeploymentRunRequest(
            parameters=action.parameters,
            job_variables=action.job_variables or None,
            idempotency_key=f"automation:{claimed.id}",
        )
        create_deployment_run(conn, target.id, request, now=now)
    elif isinstance(action, (PauseDeployment, ResumeDeployment)):
        target = _deployment(conn, claimed, action.name)
        deployments.set_deployment_paused(
            conn, target.id, isinstance(action, PauseDeployment), now=now
        )
    elif isinstance(action, (PauseAutomation, ResumeAutomation)):
        named = action.name or (claimed.automation.name if claimed.automation else None)
        if named is None:
            raise ObjectNotFound("The automation to pause or resume was deleted.")
        set_automation_enabled(conn, named, isinstance(action, ResumeAutomation), now=now)
    else:
        raise AnabranchError(f"{type(action).__name__} is not carried out on the store.")


def _claimed(conn: Connection, action_id: uuid.UUID) -> ClaimedAction:
    row = (
        conn.execute(
            sa.select(
                automation_action, automation_firing.c.automation_id, automation_firing.c.event
            )
            .join(automation_firing, automation_firing.c.id == automation_action.c.firing_id)
            .where(automation_action.c.id == action_id)
        )
        .mappings()
        .one()
    )
    happened = Event.model_validate(row["event"]) if row["event"] else None
    flow_run_id = flow_run_of(happened) if happened is not None else None
    flow_run = _optional(lambda: runs.read_flow_run(conn, flow_run_id)) if flow_run_id else None
    deployment = None
    if flow_run is not None and flow_run.deployment_id is not None:
        deployment = _optional(lambda: deployments.read_deployment(conn, flow_run.deployment_id))
    return ClaimedAction(
        id=action_id,
        firing_id=row["firing_id"],
        attempt=row["attempts"],
        action=_ACTION.validate_python(row["action"]),
        automation=automation_by_id(conn, row["automation_id"]),
        event=happened,
        flow_run=flow_run,
        deployment=deployment,
    )


def _optional(read: Any) -> Any:
    try:
        return read()
    except ObjectNotFound:
        return None


def _flow_run_id(claimed: ClaimedAction) -> uuid.UUID:
    if claimed.flow_run is None:
        raise ObjectNotFound(
            "This action acts on the flow run of the event that fired it, and that event "
            "is about no flow run (or the run is gone)."
        )
    return claimed.flow_run.id


def _deployment(conn: Connection, claimed: ClaimedAction, name: str | None) -> Deployment:
    if name is not None:
        flow_name, deployment_name = split_full_name(name)
        return deployments.read_deployment_by_name(conn, f"{flow_name}/{deployment_name}")
    if claimed.deployment is None:
        raise ObjectNotFound(
            "The action names no deployment and the event that fired it is about no "
            "deployment's run; give the action `name='flow/deployment'`."
        )
    return claimed.deployment


def _tell_outcome(conn: Connection, row: Any, error: str | None, now: datetime) -> None:
    firing = (
        conn.execute(sa.select(automation_firing).where(automation_firing.c.id == row["firing_id"]))
        .mappings()
        .first()
    )
    owner = automation_by_id(conn, firing["automation_id"]) if firing else None
    resource = (
        automation_resource(owner)
        if owner is not None
        else {RESOURCE_ID: f"anabranch.automation.{firing['automation_id'] if firing else ''}"}
    )
    related = []
    if firing is not None and firing["flow_run_id"] is not None:
        related.append(
            {RESOURCE_ID: f"anabranch.flow-run.{firing['flow_run_id']}", RESOURCE_ROLE: "flow-run"}
        )
    emit(
        conn,
        "anabranch.automation.action." + ("executed" if error is None else "failed"),
        resource,
        now=now,
        related=related,
        payload={
            "firing_id": str(row["firing_id"]),
            "action_index": row["index"],
            "action_type": row["action"].get("type"),
            "attempts": row["attempts"],
            "error": error,
        },
    )
