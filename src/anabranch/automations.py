"""Automations, Prefect-shaped: a trigger over events and the actions it runs.

    from datetime import timedelta
    from anabranch.automations import Automation, EventTrigger, SendNotification

    Automation(
        name="tell me when nightly fails",
        trigger=EventTrigger(
            expect={"anabranch.flow-run.Failed", "anabranch.flow-run.Crashed"},
            match_related={"anabranch.resource.role": "flow",
                           "anabranch.resource.name": "nightly"},
        ),
        actions=[SendNotification(url="slack://TokenA/TokenB/TokenC")],
    ).create()

The server (``anabranch server start``) evaluates automations and carries out their
actions, for runs written through it and by embedded clients on its database.
"""

from __future__ import annotations

import warnings
from typing import Any

from anabranch.client import get_client
from anabranch.exceptions import ServerUnavailable
from anabranch.schemas.automations import (
    Action,
    AutomationFiring,
    AutomationSpec,
    CallWebhook,
    CancelFlowRun,
    ChangeFlowRunState,
    EventTrigger,
    PauseAutomation,
    PauseDeployment,
    ResumeAutomation,
    ResumeDeployment,
    RunDeployment,
    SendNotification,
    StoredAutomation,
)
from anabranch.settings import get_settings

__all__ = [
    "Action",
    "Automation",
    "AutomationFiring",
    "CallWebhook",
    "CancelFlowRun",
    "ChangeFlowRunState",
    "EventTrigger",
    "PauseAutomation",
    "PauseDeployment",
    "ResumeAutomation",
    "ResumeDeployment",
    "RunDeployment",
    "SendNotification",
]

WHERE_AUTOMATIONS_RUN = (
    "Automations are evaluated by the server: they fire while `anabranch server start` runs "
    "on this database (it sees runs written through it and by processes writing to the "
    "database directly). Point ANABRANCH_API_URL at a server to be sure one is running."
)


class Automation(StoredAutomation):
    """An automation you declare and store: ``.create()``, ``.update()``, ``.delete()``,
    ``Automation.read(name)``. Secrets in actions (notification URLs, webhook headers)
    come back masked from reads, and ``.update()`` keeps the stored ones."""

    def create(self) -> Automation:
        """Store this automation (its name must be new) and return it as stored."""
        if not get_settings().api_url:
            warnings.warn(WHERE_AUTOMATIONS_RUN, stacklevel=2)
        try:
            return _as_automation(get_client().create_automation(self._spec()))
        except ServerUnavailable as exc:
            raise ServerUnavailable(f"{exc} {WHERE_AUTOMATIONS_RUN}") from exc

    def update(self) -> Automation:
        """Replace the stored automation of this name (or, after a rename, of this id)."""
        client = get_client()
        current = self._current_name(client)
        return _as_automation(client.update_automation(current, self._spec()))

    def delete(self) -> None:
        """Delete the stored automation of this name."""
        get_client().delete_automation(self.name)

    def pause(self) -> Automation:
        return _as_automation(get_client().set_automation_enabled(self.name, False))

    def resume(self) -> Automation:
        return _as_automation(get_client().set_automation_enabled(self.name, True))

    def firings(self, limit: int = 50) -> list[AutomationFiring]:
        """This automation's latest firings, newest first, with how each action went."""
        return get_client().read_automation_firings(automation_name=self.name, limit=limit)

    @classmethod
    def read(cls, name: str) -> Automation:
        """The stored automation named ``name`` (ObjectNotFound if there is none)."""
        return _as_automation(get_client().read_automation(name))

    def _spec(self) -> AutomationSpec:
        return AutomationSpec.model_validate(
            self.model_dump(include=set(AutomationSpec.model_fields))
        )

    def _current_name(self, client: Any) -> str:
        for stored in client.read_automations():
            if stored.id == self.id:
                return str(stored.name)
        return self.name


def _as_automation(stored: StoredAutomation) -> Automation:
    return Automation.model_validate(stored.model_dump())
