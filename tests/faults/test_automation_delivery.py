"""Notifications survive faults: a run crashed by a SIGKILL notifies; a server SIGKILLed
with a firing half-delivered, and with an event arriving while it is down, delivers both
once it is back; two replicas on one PostgreSQL deliver each firing once."""

from __future__ import annotations

import json
import uuid

import pytest
from cryptography.fernet import Fernet

from anabranch.testing import wait_until
from automations.receivers import HTTPReceiver
from faults.harness import Lab

pytestmark = [pytest.mark.embedded_only, pytest.mark.timeout(240)]

QUICK = {
    "ANABRANCH_AUTOMATIONS_POLL_SECONDS": "0.05",
    "ANABRANCH_AUTOMATION_RETRY_SECONDS": "0.3",
    # Every life and replica of a server unseals what another sealed: one key for all (each
    # life here has a home of its own, so the key file in a home would differ).
    "ANABRANCH_SECRET_KEY": Fernet.generate_key().decode(),
}


def _run_id(line: str) -> str:
    return str(uuid.UUID(line.removeprefix("RUN ")))


def test_a_sigkilled_flow_run_crashed_by_the_heartbeat_check_notifies(lab: Lab) -> None:
    database = lab.database("sqlite")
    heartbeat = {"ANABRANCH_HEARTBEAT_SECONDS": "1"}
    server = lab.server(database, **QUICK, **heartbeat)
    env = lab.env(lab.folder / "home", ANABRANCH_API_URL=server.url, **heartbeat)
    with HTTPReceiver() as receiver:
        json_url = receiver.url.replace("http://", "json://") + "/crashed"
        lab.cli("automation", "create", "crashes", "--on-state", "Crashed", "--notify", json_url,
                env=env)
        lab.cli("concurrency-limit", "create", "held", "1", env=env)
        victim = lab.flow("hold_slot.py", "--tag", "held", name="victim", env=env)
        ids = json.loads(victim.wait_for("READY ").removeprefix("READY "))
        victim.kill()
        (request,) = receiver.wait_for(1, timeout=120)
    assert "Crashed" in request.json["title"]
    listed = lab.cli("automation", "inspect", "crashes", env=env).stdout
    assert "send-notification: done after 1 attempt(s)" in listed
    assert "/crashed" not in listed  # the URL's path is masked
    assert ids["flow_run_id"] in lab.cli(
        "event", "ls", "--filter", "event=anabranch.flow-run.Crashed", env=env
    ).stdout


def test_a_server_killed_mid_delivery_and_down_during_an_event_delivers_both(lab: Lab) -> None:
    database = lab.database("sqlite")
    server = lab.server(database, **QUICK, ANABRANCH_AUTOMATION_ACTION_ATTEMPTS="50")
    through_server = lab.env(lab.folder / "home", ANABRANCH_API_URL=server.url)
    straight_to_database = lab.env(lab.folder / "home2", ANABRANCH_DATABASE_URL=database)
    with HTTPReceiver(then=503) as receiver:
        lab.cli("automation", "create", "failures", "--on-state", "Failed",
                "--webhook", receiver.url + "/hook", env=through_server)
        first = _run_id(lab.flow("fails.py", "first", env=through_server).wait_for("RUN "))

        def attempted_and_waiting() -> bool:
            shown = json.loads(lab.cli("automation", "inspect", "failures", "--output", "json",
                                       env=through_server).stdout)
            actions = [a for f in shown["firings"] for a in f["actions"]]
            return bool(actions) and actions[0]["status"] == "pending" and (
                actions[0]["attempts"] >= 1
            )

        # Stored, claimed, attempted and recorded as to be tried again: then the kill.
        wait_until(attempted_and_waiting, timeout=30, what="a failed attempt recorded")
        server.kill()
        receiver.answer_with(then=200)
        second = _run_id(
            lab.flow("fails.py", "second", env=straight_to_database).wait_for("RUN ")
        )

        def second_failed() -> bool:
            events = lab.cli("event", "ls", "--filter", f"resource=*{second}",
                             env=straight_to_database).stdout
            return "anabranch.flow-run.Failed" in events

        wait_until(second_failed, timeout=30, what="the second run's Failed event stored")
        server.start()

        def delivered() -> set[str]:
            return {r.json["resource"]["anabranch.resource.id"] for r in receiver.requests
                    if r.json and r.json.get("event") == "anabranch.flow-run.Failed"}

        wait_until(lambda: len(delivered()) == 2, timeout=60, what="both runs delivered")
    assert delivered() == {f"anabranch.flow-run.{first}", f"anabranch.flow-run.{second}"}


def test_two_replicas_on_one_postgresql_deliver_each_firing_once(lab: Lab) -> None:
    database = lab.database("postgresql")
    replicas = [lab.server(database, **QUICK), lab.server(database, **QUICK)]
    envs = [lab.env(lab.folder / f"home-{i}", ANABRANCH_API_URL=r.url)
            for i, r in enumerate(replicas)]
    with HTTPReceiver() as receiver:
        lab.cli("automation", "create", "failures", "--on-state", "Failed",
                "--webhook", receiver.url + "/hook", env=envs[0])
        runs = [
            _run_id(lab.flow("fails.py", f"run {i}", env=envs[i % 2]).wait_for("RUN "))
            for i in range(6)
        ]

        def all_done() -> bool:
            shown = json.loads(lab.cli("automation", "inspect", "failures", "--output", "json",
                                       env=envs[1]).stdout)
            statuses = [a["status"] for f in shown["firings"] for a in f["actions"]]
            return statuses == ["done"] * 6

        wait_until(all_done, timeout=60, what="six firings delivered")
        delivered = [r.json["resource"]["anabranch.resource.id"] for r in receiver.requests]
    assert sorted(delivered) == sorted(f"anabranch.flow-run.{run}" for run in runs)
