"""Notification URLs and webhook headers are sealed in the database: a copy of the file
does not give them away, reads show them masked, and a process with another key says how
to give every process the same one."""

from __future__ import annotations

import stat

import pytest

from anabranch.automations import Automation, CallWebhook, EventTrigger
from anabranch.client import get_client
from anabranch.database import get_engine
from anabranch.exceptions import AnabranchError
from anabranch.settings import get_settings

pytestmark = [pytest.mark.embedded_only, pytest.mark.filterwarnings("ignore::UserWarning")]

HOOK = "https://hooks.example.com/services/T000/B000/TOPSECRET"


def create() -> None:
    Automation(
        name="sealed",
        trigger=EventTrigger(expect={"anabranch.flow-run.Failed"}),
        actions=[CallWebhook(url=HOOK, headers={"Authorization": "Bearer TOKEN123"})],
    ).create()


def stored_actions() -> str:
    url = get_settings().resolved_database_url
    with get_engine(url).connect() as conn:
        return str(conn.exec_driver_sql("SELECT actions FROM automation").scalar())


def test_secrets_are_sealed_in_the_database_and_masked_on_reads() -> None:
    create()
    raw = stored_actions()
    assert "TOPSECRET" not in raw and "TOKEN123" not in raw
    assert "sealed:v1:" in raw
    key_file = get_settings().home_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    shown = Automation.read("sealed").actions[0]
    assert shown.url == "https://hooks.example.com/***"
    assert shown.headers == {"Authorization": "***"}


def test_a_process_with_another_key_shows_only_the_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    create()
    other = "x" * 43 + "="  # 32 bytes of url-safe base64
    monkeypatch.setenv("ANABRANCH_SECRET_KEY", other)
    assert Automation.read("sealed").actions[0].url == "***"


def test_a_malformed_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANABRANCH_SECRET_KEY", "not a key")
    with pytest.raises(AnabranchError, match="ANABRANCH_SECRET_KEY is not a key"):
        create()
    assert get_client().read_automations() == []  # nothing stored
