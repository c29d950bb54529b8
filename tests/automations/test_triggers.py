"""How triggers judge events: names and labels, thresholds in a window, for_each keys,
proactive windows, and firing each thing once. Evaluated on the embedded store with the
orchestration's own round (what the server runs), at chosen moments."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from anabranch import _clock, flow, task
from anabranch.automations import CallWebhook, EventTrigger
from anabranch.client import get_client
from anabranch.client.recorder import flush_all
from anabranch.database import write_transaction
from anabranch.orchestration import events, triggers
from anabranch.schemas.automations import AutomationSpec
from anabranch.schemas.events import Event
from anabranch.settings import get_settings

pytestmark = pytest.mark.embedded_only

HOOK = "http://127.0.0.1:9/hook"


def make(name: str, **trigger: object) -> None:
    get_client().create_automation(
        AutomationSpec(name=name, trigger=EventTrigger(**trigger), actions=[CallWebhook(url=HOOK)])
    )


def evaluate(now: datetime | None = None, holder: str = "test") -> int | None:
    get_client()  # opening it migrates the store
    with write_transaction(get_settings().resolved_database_url) as conn:
        return triggers.evaluate_triggers(conn, holder=holder, now=now or _clock.now())


def emit(name: str, resource: str, *, at: datetime | None = None, **labels: str) -> Event:
    event = Event.model_validate(
        {
            "event": name,
            "occurred": at or _clock.now(),
            "resource": {"anabranch.resource.id": resource, **labels},
            "related": [
                {"anabranch.resource.id": "anabranch.flow.nightly",
                 "anabranch.resource.role": "flow", "anabranch.resource.name": "nightly"}
            ],
        }
    )
    get_client().emit_events([event])
    return event


def firings(name: str) -> list:
    return get_client().read_automation_firings(automation_name=name)


def test_a_reactive_trigger_fires_once_per_matching_event() -> None:
    evaluate()  # the evaluator's place: the end of the feed
    make("orders", expect={"shop.order.*"}, match={"anabranch.resource.id": "shop.order.*"})
    emit("shop.order.shipped", "shop.order.1")
    emit("shop.order.shipped", "shop.thing.2")  # resource does not match
    emit("shop.invoice.sent", "shop.order.3")  # name does not match
    emit("shop.order.lost", "shop.order.4")
    assert evaluate() == 2
    assert evaluate() == 0  # nothing new
    reasons = sorted(f.reason for f in firings("orders"))
    assert reasons[0].startswith("shop.order.lost of shop.order.4")
    assert reasons[1].startswith("shop.order.shipped of shop.order.1")


def test_events_before_the_evaluator_started_are_not_acted_on() -> None:
    make("orders", expect={"shop.order.*"})
    emit("shop.order.shipped", "shop.order.1")
    evaluate()  # the first round takes its place at the end of the feed
    assert firings("orders") == []


def test_match_related_needs_every_specification_met() -> None:
    evaluate()
    make("nightly only", expect={"x.done"},
         match_related={"anabranch.resource.role": "flow", "anabranch.resource.name": "nightly"})
    make("other flow", expect={"x.done"},
         match_related={"anabranch.resource.role": "flow", "anabranch.resource.name": "hourly"})
    make("both", expect={"x.done"}, match_related=[
        {"anabranch.resource.role": "flow", "anabranch.resource.name": "night*"},
        {"anabranch.resource.role": "tag", "anabranch.resource.name": "prod"},
    ])
    emit("x.done", "x.1")
    evaluate()
    assert len(firings("nightly only")) == 1
    assert firings("other flow") == []
    assert firings("both") == []  # no related tag


def test_a_threshold_counts_within_the_window_per_for_each_key() -> None:
    evaluate()
    make("three failures", expect={"job.failed"}, threshold=3, within=timedelta(minutes=1),
         for_each={"anabranch.resource.id"})
    start = _clock.now()
    for seconds in (0, 10, 20):
        emit("job.failed", "job.a", at=start + timedelta(seconds=seconds))
    emit("job.failed", "job.b", at=start)
    emit("job.failed", "job.b", at=start + timedelta(seconds=5))
    for seconds in (0, 70, 140):  # too far apart
        emit("job.failed", "job.c", at=start + timedelta(seconds=seconds))
    evaluate()
    fired = firings("three failures")
    assert len(fired) == 1
    assert fired[0].event.resource.id == "job.a"


def test_a_proactive_trigger_fires_when_the_expected_event_is_late() -> None:
    evaluate()
    make("stuck", posture="Proactive", after={"job.started"}, expect={"job.finished"},
         for_each={"anabranch.resource.id"}, within=timedelta(seconds=30))
    start = _clock.now()
    emit("job.started", "job.quick", at=start)
    emit("job.started", "job.slow", at=start)
    emit("job.finished", "job.quick", at=start + timedelta(seconds=5))
    assert evaluate(start + timedelta(seconds=10)) == 0
    assert evaluate(start + timedelta(seconds=29)) == 0
    assert evaluate(start + timedelta(seconds=31)) == 1
    assert evaluate(start + timedelta(seconds=60)) == 0  # told once
    fired = firings("stuck")
    assert [f.event.resource.id for f in fired] == ["job.slow"]
    assert "Expected job.finished within 30 s after job.started of job.slow" in fired[0].reason


def test_a_proactive_trigger_without_after_watches_standing_windows() -> None:
    make("heartbeat", posture="Proactive", expect={"app.alive"}, within=timedelta(seconds=60))
    start = _clock.now()
    evaluate(start)  # opens the first window
    emit("app.alive", "app.1", at=start + timedelta(seconds=10))
    assert evaluate(start + timedelta(seconds=61)) == 0  # it came
    assert evaluate(start + timedelta(seconds=125)) == 1  # the next window saw nothing


def test_only_one_holder_evaluates_at_a_time() -> None:
    assert evaluate(holder="replica-a") == 0
    assert evaluate(holder="replica-b") is None
    later = _clock.now() + timedelta(minutes=1)
    assert evaluate(later, holder="replica-b") == 0  # a's lease lapsed: b takes over


def test_state_changes_are_events_with_their_runs_labels() -> None:
    @task(tags=["db"])
    def step() -> int:
        return 1

    @flow
    def nightly() -> None:
        step()
        raise ValueError("disk full")

    with pytest.raises(ValueError):
        nightly()
    flush_all()
    page = get_client().read_events(event_names=["anabranch.*-run.*"], limit=50)
    names = [e.event for e in page.events]
    assert names == [
        "anabranch.flow-run.Pending", "anabranch.flow-run.Running",
        "anabranch.task-run.Pending", "anabranch.task-run.Running",
        "anabranch.task-run.Completed", "anabranch.flow-run.Failed",
    ]
    failed = page.events[-1]
    assert failed.resource["anabranch.state-message"].endswith("ValueError: disk full")
    assert failed.payload["validated_state"]["type"] == "FAILED"
    assert failed.related_in("flow")[0].name == "nightly"
    task_event = page.events[2]
    assert {r.role for r in task_event.related} == {"flow-run", "flow", "tag"}
    assert task_event.related_in("tag")[0].id == "anabranch.tag.db"
    by_flow = get_client().read_events(related_ids=["anabranch.flow.nightly"], limit=50)
    assert len(by_flow.events) == 6


def test_old_events_are_forgotten_and_the_newest_is_always_kept() -> None:
    now = _clock.now()
    for days in (30, 20, 10):
        emit("app.tick", "app.1", at=now - timedelta(days=days))
    emit("app.tick", "app.1", at=now - timedelta(days=1))
    url = get_settings().resolved_database_url
    with write_transaction(url) as conn:
        assert events.trim_events(conn, now=now, retention_days=7) == 3
    kept = get_client().read_events(event_names=["app.tick"]).events
    assert [e.occurred.date() for e in kept] == [(now - timedelta(days=1)).date()]
    with write_transaction(url) as conn:  # everything is older: the newest stays
        assert events.trim_events(conn, now=now + timedelta(days=30), retention_days=7) == 0
    assert len(get_client().read_events(event_names=["app.tick"]).events) == 1
