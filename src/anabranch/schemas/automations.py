"""Automations: a trigger over events and the actions taken when it fires.

Shaped as Prefect 3's (``EventTrigger`` with ``expect``, ``after``, ``match``,
``match_related``, ``for_each``, ``posture``, ``threshold``, ``within``); actions name what
they act on (a notification URL, a deployment by name) instead of a stored block.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from anabranch import _clock
from anabranch._ids import new_id
from anabranch.schemas.events import Event
from anabranch.schemas.states import StateType

_LAZY = ConfigDict(defer_build=True)
# The longest window a trigger may watch.
MAX_WITHIN = timedelta(days=365)

class EventTrigger(BaseModel):
    """When an automation fires.

    Reactive: when ``threshold`` events named in ``expect`` (and fitting ``match`` and
    ``match_related``) arrive within ``within`` for the same ``for_each`` key; with
    ``after``, only those that follow one of the ``after`` events for that key. Proactive:
    when fewer than ``threshold`` ``expect`` events arrive within ``within`` after an
    ``after`` event for the key (or within each ``within`` window, without ``after``).
    ``within`` of zero on a reactive trigger counts with no time bound.
    """

    model_config = ConfigDict(defer_build=True, extra="forbid")

    type: Literal["event"] = "event"
    match: dict[str, str | list[str]] = Field(default_factory=dict)
    match_related: dict[str, str | list[str]] | list[dict[str, str | list[str]]] = Field(
        default_factory=dict
    )
    after: set[str] = Field(default_factory=set)
    expect: set[str] = Field(default_factory=set)
    for_each: set[str] = Field(default_factory=set)
    posture: Literal["Reactive", "Proactive"] = "Reactive"
    threshold: int = Field(default=1, ge=1, le=1_000_000)
    within: timedelta = timedelta(0)

    @field_validator("within")
    @classmethod
    def _a_sensible_window(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("`within` can not be negative")
        if value > MAX_WITHIN:
            raise ValueError("`within` is at most 365 days")
        return value

    @model_validator(mode="after")
    def _proactive_needs_a_window(self) -> EventTrigger:
        if self.posture == "Proactive" and self.within < timedelta(seconds=1):
            raise ValueError(
                "a Proactive trigger needs `within` of at least one second: the time in "
                "which the expected events must arrive"
            )
        return self

    @property
    def related_specs(self) -> list[dict[str, str | list[str]]]:
        """``match_related`` as a list of specifications, each met by some related resource."""
        specs = self.match_related
        return [specs] if isinstance(specs, dict) else specs


class _Action(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")


class SendNotification(_Action):
    """Send a message through an Apprise URL (``slack://``, ``msteams://``, ``discord://``,
    ``mailto://``, ``ntfy://``, ``json://``, ...). ``subject`` and ``body`` are Jinja
    templates; the default body names the run, its state, its message and its page."""

    type: Literal["send-notification"] = "send-notification"
    url: str = Field(min_length=1)
    subject: str = "{{ default_subject }}"
    body: str = "{{ default_body }}"


class CallWebhook(_Action):
    """Send an HTTP request; ``payload`` is a Jinja template (JSON by default: the event)."""

    type: Literal["call-webhook"] = "call-webhook"
    url: str = Field(min_length=1)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    payload: str = "{{ event_json }}"


class CancelFlowRun(_Action):
    """Cancel the flow run the event is about."""

    type: Literal["cancel-flow-run"] = "cancel-flow-run"


class ChangeFlowRunState(_Action):
    """Move the flow run the event is about to ``state`` (with ``name`` and ``message``)."""

    type: Literal["change-flow-run-state"] = "change-flow-run-state"
    state: StateType
    name: str | None = None
    message: str | None = None


class RunDeployment(_Action):
    """Run a deployment (``"flow/deployment"``; the event's own deployment when None)."""

    type: Literal["run-deployment"] = "run-deployment"
    name: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    job_variables: dict[str, Any] = Field(default_factory=dict)


class PauseDeployment(_Action):
    """Pause a deployment's schedules (the event's own deployment when ``name`` is None)."""

    type: Literal["pause-deployment"] = "pause-deployment"
    name: str | None = None


class ResumeDeployment(_Action):
    """Resume a deployment's schedules (the event's own deployment when ``name`` is None)."""

    type: Literal["resume-deployment"] = "resume-deployment"
    name: str | None = None


class PauseAutomation(_Action):
    """Disable an automation (this one when ``name`` is None)."""

    type: Literal["pause-automation"] = "pause-automation"
    name: str | None = None


class ResumeAutomation(_Action):
    """Enable an automation (this one when ``name`` is None)."""

    type: Literal["resume-automation"] = "resume-automation"
    name: str | None = None


Action = Annotated[
    SendNotification
    | CallWebhook
    | CancelFlowRun
    | ChangeFlowRunState
    | RunDeployment
    | PauseDeployment
    | ResumeDeployment
    | PauseAutomation
    | ResumeAutomation,
    Field(discriminator="type"),
]


class AutomationSpec(BaseModel):
    """What a user declares: a name, a trigger and the actions it runs."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    enabled: bool = True
    trigger: EventTrigger
    actions: list[Action] = Field(min_length=1)


class StoredAutomation(AutomationSpec):
    """An automation as the store keeps it; secrets in its actions are masked on reads."""

    id: uuid.UUID = Field(default_factory=new_id)
    created: datetime = Field(default_factory=_clock.now)
    updated: datetime = Field(default_factory=_clock.now)


ActionStatus = Literal["pending", "running", "done", "failed"]


class ActionOutcome(BaseModel):
    """Where one action of a firing stands."""

    model_config = _LAZY

    index: int
    type: str
    status: ActionStatus
    attempts: int = 0
    error: str | None = None
    finished: datetime | None = None


class AutomationFiring(BaseModel):
    """One firing of an automation, stored before its actions run."""

    model_config = _LAZY

    id: uuid.UUID
    automation_id: uuid.UUID
    automation_name: str
    fired: datetime
    reason: str
    event: Event | None = None
    flow_run_id: uuid.UUID | None = None
    actions: list[ActionOutcome] = Field(default_factory=list)
