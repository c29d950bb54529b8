"""`anabranch automation ...` and `anabranch event ls`: the one-line form, files, masked
secrets, pausing, and clear errors for bad input."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from anabranch import flow
from anabranch._sealed import unseal
from anabranch.automations import Automation
from anabranch.client import get_client
from anabranch.client.recorder import flush_all
from anabranch.events import emit_event
from anabranch.orchestration.automations import automation_by_id
from server_harness import ANABRANCH

SLACK = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"


def test_the_one_line_form_makes_a_failure_notification(cli) -> None:
    done = cli("automation", "create", "nightly-failed", "--on-state", "Failed",
               "--on-state", "crashed", "--flow", "nightly", "--tag", "prod", "--notify", SLACK)
    assert done.returncode == 0, done.stderr
    stored = Automation.read("nightly-failed")
    assert stored.trigger.expect == {"anabranch.flow-run.Failed", "anabranch.flow-run.Crashed"}
    assert stored.trigger.match_related == [
        {"anabranch.resource.role": "flow", "anabranch.resource.name": "nightly"},
        {"anabranch.resource.role": "tag", "anabranch.resource.name": "prod"},
    ]
    assert stored.actions[0].url == "https://hooks.slack.com/***"
    listed = cli("automation", "ls")
    assert "nightly-failed" in listed.stdout and "never" in listed.stdout
    assert "XXXXSECRET" not in listed.stdout + cli("automation", "inspect", "nightly-failed").stdout
    assert "XXXXSECRET" not in cli("automation", "ls", "--output", "json").stdout


def test_a_file_holds_the_whole_python_structure(cli, tmp_path: Path) -> None:
    spec = tmp_path / "automations.yaml"
    spec.write_text(
        """
- name: stuck runs
  description: runs Running for over 30 minutes
  trigger:
    posture: Proactive
    after: [anabranch.flow-run.Running]
    expect: [anabranch.flow-run.Completed, anabranch.flow-run.Failed]
    for_each: [anabranch.resource.id]
    within: 1800
  actions:
    - type: call-webhook
      url: https://example.com/hooks/abc?token=SECRET
      headers: {Authorization: Bearer SECRET}
    - type: cancel-flow-run
"""
    )
    done = cli("automation", "create", "--from-file", str(spec))
    assert done.returncode == 0, done.stderr
    stored = Automation.read("stuck runs")
    assert stored.trigger.within.total_seconds() == 1800
    assert [a.type for a in stored.actions] == ["call-webhook", "cancel-flow-run"]
    shown = cli("automation", "inspect", "stuck runs").stdout
    assert "SECRET" not in shown and "https://example.com/***" in shown


def test_an_update_sending_masked_secrets_back_keeps_the_stored_ones(cli) -> None:
    cli("automation", "create", "n", "--on-state", "Failed", "--notify", SLACK)
    automation = Automation.read("n")
    automation.description = "now described"
    automation.update()
    with get_client() as client:
        stored = client.run(
            lambda conn: automation_by_id(conn, automation.id), {}, writes=False
        )
    assert unseal(stored.actions[0].url) == SLACK
    assert Automation.read("n").description == "now described"


def test_pause_resume_and_delete(cli) -> None:
    cli("automation", "create", "n", "--on-state", "Failed", "--notify", SLACK)
    assert cli("automation", "pause", "n").returncode == 0
    assert Automation.read("n").enabled is False
    assert "paused" in cli("automation", "ls").stdout
    assert cli("automation", "resume", "n").returncode == 0
    assert Automation.read("n").enabled is True
    assert cli("automation", "delete", "n").returncode == 0
    missing = cli("automation", "inspect", "n")
    assert missing.returncode == 1
    assert "No automation named 'n'" in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("x", "--on-state", "Exploded", "--notify", SLACK), "'Exploded' is not a state"),
        (("x", "--notify", SLACK), "Say when it fires"),
        (("x", "--on-state", "Failed"), "Say what it does"),
        (("--on-state", "Failed", "--notify", SLACK), "Give the automation a NAME"),
    ],
)
def test_bad_options_are_named(cli, args: tuple[str, ...], message: str) -> None:
    done = cli("automation", "create", *args)
    assert done.returncode == 1
    assert message in done.stderr


def test_a_bad_file_is_named(cli, tmp_path: Path) -> None:
    spec = tmp_path / "a.json"
    spec.write_text(json.dumps({"name": "x", "trigger": {"posture": "Sideways"}, "actions": []}))
    done = cli("automation", "create", "--from-file", str(spec))
    assert done.returncode == 1
    assert "trigger.posture" in done.stderr and "actions" in done.stderr
    taken = cli("automation", "create", "--from-file", str(tmp_path / "missing.yaml"))
    assert taken.returncode == 1 and "Can not read" in taken.stderr


def test_a_second_automation_of_a_name_is_refused(cli) -> None:
    cli("automation", "create", "n", "--on-state", "Failed", "--notify", SLACK)
    again = cli("automation", "create", "n", "--on-state", "Failed", "--notify", SLACK)
    assert again.returncode == 1
    assert "exists already" in again.stderr


def test_event_ls_lists_and_filters_state_changes(cli) -> None:
    @flow(name="listed")
    def listed() -> None:
        raise ValueError("boom")

    listed(return_state=True)
    flush_all()
    everything = cli("event", "ls")
    assert "anabranch.flow-run.Running" in everything.stdout
    failed = cli("event", "ls", "--filter", "event=anabranch.flow-run.Failed", "--output", "json")
    (line,) = failed.stdout.splitlines()
    event = json.loads(line)
    assert event["event"] == "anabranch.flow-run.Failed"
    assert event["resource"]["anabranch.state-message"].endswith("ValueError: boom")
    by_flow = cli("event", "ls", "--filter", "related=anabranch.flow.listed")
    assert len(by_flow.stdout.splitlines()) == 3
    bad = cli("event", "ls", "--filter", "colour=red")
    assert bad.returncode == 1 and "KEY=PATTERN" in bad.stderr


def test_event_ls_follow_shows_new_events_until_interrupted() -> None:
    get_client()  # the store exists before the follower starts
    follower = subprocess.Popen(
        [ANABRANCH, "event", "ls", "--follow", "--filter", "event=shop.*"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    assert follower.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout])
    reader.start()
    try:
        assert follower.stderr is not None
        assert "Following new events" in follower.stderr.readline()
        emit_event("shop.order.shipped", {"anabranch.resource.id": "shop.order.7"})
        line = lines.get(timeout=30)
        assert "shop.order.shipped" in line and "shop.order.7" in line
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=30) == 0
        reader.join(timeout=10)


def test_inspect_shows_what_a_file_would_declare(cli, tmp_path: Path) -> None:
    cli("automation", "create", "n", "--on-state", "Failed", "--flow", "nightly",
        "--webhook", "https://example.com/hook")
    shown = cli("automation", "inspect", "n").stdout.split("firings:")[0]
    assert "within" not in shown and "after" not in shown  # defaults left out
    copy = tmp_path / "copy.yaml"
    copy.write_text(shown.replace("name: n\n", "name: copy\n"))
    masked = cli("automation", "create", "--from-file", str(copy))
    assert masked.returncode == 1 and "holds a masked value (***)" in masked.stderr
    copy.write_text(copy.read_text().replace("https://example.com/***",
                                             "https://example.com/hook"))
    assert cli("automation", "create", "--from-file", str(copy)).returncode == 0
    original, copied = Automation.read("n"), Automation.read("copy")
    assert copied.trigger == original.trigger
    assert [a.type for a in copied.actions] == ["call-webhook"]
