"""Creating an automation says where automations run: a warning on the embedded store, and
an error naming the server (and that it evaluates automations) when it can not be reached."""

from __future__ import annotations

import pytest

from anabranch.automations import Automation, EventTrigger, SendNotification
from anabranch.exceptions import ServerUnavailable
from server_harness import free_port

pytestmark = pytest.mark.embedded_only


def automation() -> Automation:
    return Automation(
        name="told",
        trigger=EventTrigger(expect={"anabranch.flow-run.Failed"}),
        actions=[SendNotification(url="json://127.0.0.1:1/hook")],
    )


def test_on_the_embedded_store_it_warns_that_the_server_evaluates_automations() -> None:
    with pytest.warns(UserWarning, match="anabranch server start"):
        created = automation().create()
    assert created.name == "told"


def test_with_no_server_reachable_the_error_says_where_automations_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANABRANCH_API_URL", f"http://127.0.0.1:{free_port()}/api")
    monkeypatch.setenv("ANABRANCH_CLIENT_RETRY_SECONDS", "0")
    with pytest.raises(ServerUnavailable, match="Automations are evaluated by the server"):
        automation().create()
