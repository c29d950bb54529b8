# mypy: disable-error-code="empty-body"
"""Automations and their firings."""

from __future__ import annotations

import uuid

from anabranch.exceptions import InvalidName, ObjectAlreadyExists, ObjectNotFound
from anabranch.operations._declare import operation
from anabranch.schemas.automations import AutomationFiring, AutomationSpec, StoredAutomation

_ONE = "/automations/{name}"


class AutomationOperations:
    """Triggers over events and the actions they run; secrets in actions come back masked."""

    @operation("POST", "/automations", implementation="automations:create_automation",
               body="automation", errors=[InvalidName, ObjectAlreadyExists], resend=False)
    def create_automation(self, automation: AutomationSpec) -> StoredAutomation:
        """Store a new automation (its name must be new). The server evaluates it."""

    @operation("GET", _ONE, implementation="automations:read_automation",
               errors=[ObjectNotFound])
    def read_automation(self, name: str) -> StoredAutomation:
        """One automation by name."""

    @operation("GET", "/automations", implementation="automations:read_automations")
    def read_automations(self) -> list[StoredAutomation]:
        """Every automation, by name."""

    @operation("PUT", _ONE, implementation="automations:update_automation",
               errors=[InvalidName, ObjectNotFound, ObjectAlreadyExists])
    def update_automation(self, name: str, automation: AutomationSpec) -> StoredAutomation:
        """Replace an automation's declaration; masked secrets sent back keep the stored
        ones."""

    @operation("PATCH", _ONE, implementation="automations:set_automation_enabled",
               errors=[ObjectNotFound])
    def set_automation_enabled(self, name: str, enabled: bool) -> StoredAutomation:
        """Pause (False) or resume (True) an automation."""

    @operation("DELETE", _ONE, implementation="automations:delete_automation",
               errors=[ObjectNotFound])
    def delete_automation(self, name: str) -> None:
        """Delete an automation and its actions not yet carried out."""

    @operation("GET", "/automation_firings", implementation="automations:read_automation_firings",
               errors=[ObjectNotFound])
    def read_automation_firings(
        self,
        *,
        automation_name: str | None = None,
        flow_run_id: uuid.UUID | None = None,
        limit: int = 50,
    ) -> list[AutomationFiring]:
        """Firings, newest first, of one automation or about one flow run, each with how
        its actions went."""
