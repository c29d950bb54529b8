"""Being told: automations on a real server deliver to real receivers on loopback (an HTTP
server for webhooks and json:// notifications, an SMTP server for mailto://)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from anabranch import _clock, flow
from anabranch.automations import (
    Automation,
    CallWebhook,
    EventTrigger,
    SendNotification,
)
from anabranch.client import get_client
from anabranch.client.recorder import flush_all
from anabranch.schemas.deployments import Deployment, DeploymentRunRequest
from anabranch.testing import wait_until
from automations.receivers import HTTPReceiver, SMTPReceiver
from server_harness import Server

pytestmark = [pytest.mark.embedded_only, pytest.mark.timeout(120)]

ON_FAILED = EventTrigger(expect={"anabranch.flow-run.Failed"})


def wall_clock(arrived_monotonic: float) -> float:
    return time.time() - (time.monotonic() - arrived_monotonic)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_failed_flow_run_notifies_within_two_seconds(
    kind: str, automation_server: Callable[..., Server]
) -> None:
    automation_server(kind)
    with HTTPReceiver() as receiver, SMTPReceiver() as smtp:
        mail = f"mailto://127.0.0.1:{smtp.port}?from=anabranch@example.com&to=ops@example.com"
        Automation(
            name="nightly failed",
            trigger=ON_FAILED,
            actions=[
                SendNotification(url=receiver.url.replace("http://", "json://") + "/notify"),
                SendNotification(
                    url=mail, subject="{{ flow_run.name }} is {{ flow_run.state.name }}"
                ),
            ],
        ).create()

        @flow(name="nightly")
        def nightly() -> None:
            raise RuntimeError("the warehouse is down")

        nightly(return_state=True)
        flush_all()
        (request,) = receiver.wait_for(1, timeout=10)
        (message,) = smtp.wait_for(1, timeout=10)

    (run,) = get_client().read_flow_runs(flow_name="nightly")
    assert run.state.name == "Failed"
    took = wall_clock(request.arrived) - run.state.timestamp.timestamp()
    assert took < 2.0, f"notified {took:.2f} s after the Failed state"
    assert run.name in request.json["title"]
    body = request.json["message"]
    assert "Failed" in body and "the warehouse is down" in body
    assert f"/runs/{run.id}" in body  # a link to the run's page
    assert message.subject == f"{run.name} is Failed"
    assert "the warehouse is down" in message.body


def test_only_matching_runs_notify_and_templates_shape_the_webhook(
    automation_server: Callable[..., Server],
) -> None:
    automation_server()
    with HTTPReceiver() as receiver:
        Automation(
            name="payments",
            trigger=EventTrigger(
                expect={"anabranch.flow-run.Failed", "anabranch.flow-run.Completed"},
                match_related=[
                    {"anabranch.resource.role": "flow", "anabranch.resource.name": "pay*"},
                    {"anabranch.resource.role": "tag", "anabranch.resource.name": "prod"},
                ],
            ),
            actions=[
                CallWebhook(
                    url=receiver.url + "/hook",
                    headers={"Authorization": "Bearer hook-secret"},
                    payload='{"run": "{{ flow_run.name }}", "state": "{{ event.event }}"}',
                )
            ],
        ).create()

        @flow(name="payments", tags=["prod"])
        def payments() -> str:
            return "ok"

        @flow(name="payments", tags=["dev"])
        def payments_dev() -> str:
            return "ok"

        @flow(name="reports", tags=["prod"])
        def reports() -> str:
            return "ok"

        payments_dev()
        reports()
        payments()
        flush_all()
        (request,) = receiver.wait_for(1, timeout=10)
    assert request.json["state"] == "anabranch.flow-run.Completed"
    assert request.header("Authorization") == "Bearer hook-secret"
    assert request.header("Content-Type") == "application/json"
    stored = Automation.read("payments")
    assert stored.actions[0].headers == {"Authorization": "***"}
    assert "hook-secret" not in stored.model_dump_json()
    assert len(receiver.requests) == 1  # the dev run and the reports run did not match


def test_a_late_scheduled_run_notifies(automation_server: Callable[..., Server]) -> None:
    automation_server()
    client = get_client()
    client.create_work_pool("nobody-polls")
    deployment = client.save_deployment(
        Deployment(name="hourly", flow_name="etl", entrypoint="etl.py:etl",
                   work_pool_name="nobody-polls")
    )
    with HTTPReceiver() as receiver:
        Automation(
            name="late",
            trigger=EventTrigger(expect={"anabranch.flow-run.Late"}),
            actions=[CallWebhook(url=receiver.url + "/late")],
        ).create()
        run = client.create_flow_run_from_deployment(
            deployment.id,
            DeploymentRunRequest(scheduled_time=_clock.now() - timedelta(minutes=5)),
        )
        (request,) = receiver.wait_for(1, timeout=30)
    assert request.json["event"] == "anabranch.flow-run.Late"
    assert request.json["resource"]["anabranch.resource.id"] == f"anabranch.flow-run.{run.id}"
    roles = {r["anabranch.resource.role"] for r in request.json["related"]}
    assert {"flow", "deployment", "work-pool", "work-queue"} <= roles


def test_a_proactive_trigger_tells_of_a_run_running_too_long_and_not_of_a_quick_one(
    automation_server: Callable[..., Server],
) -> None:
    automation_server()
    with HTTPReceiver() as receiver:
        Automation(
            name="too long",
            trigger=EventTrigger(
                posture="Proactive",
                after={"anabranch.flow-run.Running"},
                expect={"anabranch.flow-run.Completed", "anabranch.flow-run.Failed",
                        "anabranch.flow-run.Crashed", "anabranch.flow-run.Cancelled"},
                for_each={"anabranch.resource.id"},
                within=timedelta(seconds=2),
            ),
            actions=[CallWebhook(url=receiver.url + "/slow")],
        ).create()
        release = threading.Event()

        @flow(name="quick")
        def quick() -> None:
            pass

        @flow(name="slow")
        def slow() -> None:
            assert release.wait(timeout=60)

        quick()
        flush_all()
        runner = threading.Thread(target=slow)
        runner.start()
        try:
            (request,) = receiver.wait_for(1, timeout=30)
        finally:
            release.set()
            runner.join(timeout=30)
    (slow_run,) = get_client().read_flow_runs(flow_name="slow")
    slow_id = slow_run.id
    assert request.json["resource"]["anabranch.resource.id"] == f"anabranch.flow-run.{slow_id}"
    firings = Automation.read("too long").firings()
    assert [f.flow_run_id for f in firings] == [slow_id]  # not the quick run


def test_a_receiver_that_fails_twice_gets_the_notification_on_the_third_attempt(
    automation_server: Callable[..., Server],
) -> None:
    automation_server()
    with HTTPReceiver([503, 503]) as receiver:
        Automation(
            name="retried",
            trigger=ON_FAILED,
            actions=[SendNotification(url=receiver.url.replace("http://", "json://") + "/n")],
        ).create()

        @flow
        def breaks() -> None:
            raise ValueError("broken")

        breaks(return_state=True)
        flush_all()
        requests = receiver.wait_for(3, timeout=20)

        def recorded_done() -> bool:
            (firing,) = Automation.read("retried").firings()
            return firing.actions[0].status == "done"

        wait_until(recorded_done, timeout=20, what="the action recorded done")
    assert len(requests) == 3
    (firing,) = Automation.read("retried").firings()
    assert firing.actions[0].attempts == 3
    executed = get_client().read_events(event_names=["anabranch.automation.action.*"])
    assert [e.event for e in executed.events] == ["anabranch.automation.action.executed"]


def test_a_receiver_that_stays_down_makes_one_failed_event_with_the_error(
    automation_server: Callable[..., Server],
) -> None:
    automation_server()
    with HTTPReceiver(then=503) as receiver:
        Automation(
            name="unlucky",
            trigger=ON_FAILED,
            actions=[CallWebhook(url=receiver.url + "/down")],
        ).create()

        @flow
        def breaks() -> None:
            raise ValueError("broken")

        breaks(return_state=True)
        flush_all()

        def failed_events() -> list:
            return get_client().read_events(
                event_names=["anabranch.automation.action.*"]
            ).events

        wait_until(failed_events, timeout=30, what="the action's outcome event")
        assert len(receiver.requests) == 3  # every attempt was made
    (event,) = failed_events()
    assert event.event == "anabranch.automation.action.failed"
    assert "503" in event.payload["error"]
    assert event.payload["attempts"] == 3
    (firing,) = Automation.read("unlucky").firings()
    assert firing.actions[0].status == "failed"
    assert "503" in firing.actions[0].error
