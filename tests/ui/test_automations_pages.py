"""The automations and events pages, in Chromium against a real server: an automation listed
with its secret masked, paused and resumed from the page; the events feed filtered, paged
and followed live; a failed run's webhook, carried out by the server's automations, shown
on the run's page with how it went; user data shown as text."""

from __future__ import annotations

import uuid

import httpx
from playwright.sync_api import expect
from ui_scripts import run_script

from anabranch.schemas.automations import (
    AutomationSpec,
    CallWebhook,
    EventTrigger,
    SendNotification,
)
from anabranch.schemas.events import Event
from automations.receivers import HTTPReceiver

FAILING = '''
import sys
from anabranch import flow

@flow(name=sys.argv[2], flow_run_name=sys.argv[1])
def closing() -> None:
    raise RuntimeError("the warehouse is closed")

if __name__ == "__main__":
    try:
        closing()
    except RuntimeError:
        pass
'''


def _flow_related(flow_name: str) -> dict[str, str | list[str]]:
    return {"anabranch.resource.role": "flow", "anabranch.resource.name": flow_name}


def test_an_automation_is_listed_with_its_secret_masked_and_pauses_from_the_page(
    ui_server, page, screenshot
) -> None:
    tag = uuid.uuid4().hex[:8]
    name, secret = f"nightly-failed-{tag}", f"token-{uuid.uuid4().hex}"
    ui_server.client.create_automation(AutomationSpec(
        name=name,
        description="Tell the team when the nightly load fails.",
        trigger=EventTrigger(expect={"anabranch.flow-run.Failed", "anabranch.flow-run.Crashed"},
                             match_related=_flow_related(f"nightly-{tag}")),
        actions=[SendNotification(url=f"json://127.0.0.1:1/{secret}")],
    ))

    page.goto(ui_server.url + "/")
    page.locator("header.top nav").get_by_role("link", name="Automations").click()
    row = page.locator("tr[data-automation]", has=page.get_by_role("link", name=name))
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text(
        f"Reactive: anabranch.flow-run.Crashed, anabranch.flow-run.Failed; related to flow "
        f"name=nightly-{tag}"
    )
    expect(row).to_contain_text("send-notification json://127.0.0.1:1/***")
    expect(row).to_contain_text("never")
    screenshot(page, "automations-list")
    assert secret not in page.content()
    assert secret not in httpx.get(ui_server.url + "/automations", timeout=10).text

    # Only the pages themselves may change it (the X-Anabranch-UI header htmx sends).
    refused = httpx.post(ui_server.url + "/automations/enabled",
                         data={"name": name, "enabled": "false"}, timeout=10)
    assert refused.status_code == 403
    assert ui_server.client.read_automation(name).enabled is True

    row.get_by_role("button", name="Pause").click()
    expect(row).to_contain_text("Paused")
    assert ui_server.client.read_automation(name).enabled is False
    row.get_by_role("button", name="Resume").click()
    expect(row).to_contain_text("Active")
    assert ui_server.client.read_automation(name).enabled is True

    row.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.locator("main")).to_contain_text("Tell the team when the nightly load fails.")
    expect(page.locator("main")).to_contain_text(f"flow name=nightly-{tag}")
    expect(page.locator("table.firings")).to_contain_text("It has not fired yet.")
    screenshot(page, "automation-page")
    assert secret not in page.content()
    page.get_by_role("button", name="Pause").click()
    expect(page.locator(".run-title .badge")).to_have_text("Paused")
    assert ui_server.client.read_automation(name).enabled is False


def test_an_automation_named_like_markup_is_shown_as_text(ui_server, page) -> None:
    name = f"<img src=x onerror=alert(1)> {uuid.uuid4().hex[:6]}"
    ui_server.client.create_automation(AutomationSpec(
        name=name, description="<b>not bold</b>",
        trigger=EventTrigger(expect={f"test.never.{uuid.uuid4().hex}"}),
        actions=[CallWebhook(url="http://127.0.0.1:1/hook")],
    ))
    raw = httpx.get(ui_server.url + "/automations", timeout=10).text
    assert "<img src=x" not in raw and "&lt;img src=x onerror=alert(1)&gt;" in raw

    page.goto(ui_server.url + "/automations")
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.locator("main")).to_contain_text("<b>not bold</b>")


def test_the_events_feed_filters_and_follows_new_events(ui_server, page, screenshot) -> None:
    tag = uuid.uuid4().hex[:8]
    job = {"anabranch.resource.id": f"test.job.{tag}", "anabranch.resource.name": "<b>load</b>"}
    parent = {"anabranch.resource.id": f"test.batch.{tag}", "anabranch.resource.role": "batch"}
    ui_server.client.emit_events([
        Event(event=f"test.{tag}.started", resource=job),
        Event(event=f"test.{tag}.finished", resource=job, related=[parent],
              payload={"error": "disk full\nTraceback (most recent call last): ..."}),
    ])

    page.goto(ui_server.url + "/")
    page.locator("header.top nav").get_by_role("link", name="Events").click()
    page.get_by_label("Event").fill(f"test.{tag}.*")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.events tr.event")
    expect(rows).to_have_count(2)
    # Newest first; the error's first line, and the resource's name as text.
    expect(rows.nth(0)).to_contain_text(f"test.{tag}.finished")
    expect(rows.nth(0)).to_contain_text("disk full")
    expect(rows.nth(0)).not_to_contain_text("Traceback")
    expect(rows.nth(0)).to_contain_text("<b>load</b>")
    expect(rows.nth(1)).to_contain_text(f"test.{tag}.started")

    # A new event appears on top while the page is open.
    ui_server.client.emit_events([Event(event=f"test.{tag}.retried", resource=job)])
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text(f"test.{tag}.retried")
    screenshot(page, "events-feed")

    page.get_by_label("Related to").fill(f"test.batch.{tag}")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text(f"test.{tag}.finished")
    page.get_by_label("Related to").fill("")
    page.get_by_label("Event").fill(f"test.{tag}.st*")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text(f"test.{tag}.started")


def test_the_events_feed_pages_back_to_older_events(ui_server, page) -> None:
    tag = uuid.uuid4().hex[:8]
    job = {"anabranch.resource.id": f"test.job.{tag}"}
    ui_server.client.emit_events(
        [Event(event=f"test.{tag}.step-{i:03d}", resource=job) for i in range(60)]
    )
    page.goto(f"{ui_server.url}/events?resource=test.job.{tag}")
    rows = page.locator("table.events tr.event")
    expect(rows).to_have_count(50)
    expect(rows.nth(0)).to_contain_text(f"test.{tag}.step-059")
    page.get_by_role("link", name="Older events").click()
    expect(rows).to_have_count(10)
    expect(rows.nth(0)).to_contain_text(f"test.{tag}.step-009")
    expect(page.get_by_role("link", name="Older events")).to_have_count(0)
    page.get_by_role("link", name="Back to the newest").click()
    expect(rows).to_have_count(50)


def test_a_failed_runs_webhook_shows_on_the_run_and_automation_pages(
    ui_server, page, screenshot, tmp_path
) -> None:
    tag = uuid.uuid4().hex[:8]
    flow_name, run_name, name = f"closing-{tag}", f"closing-run-{tag}", f"on-closing-{tag}"
    with HTTPReceiver() as receiver:
        ui_server.client.create_automation(AutomationSpec(
            name=name,
            trigger=EventTrigger(expect={"anabranch.flow-run.Failed"},
                                 match_related=_flow_related(flow_name)),
            actions=[CallWebhook(url=f"{receiver.url}/hooks/secret-{tag}")],
        ))
        run_script(tmp_path, FAILING, run_name, flow_name, env=ui_server.env)
        (run,) = ui_server.client.read_flow_runs(flow_name=flow_name)

        page.goto(f"{ui_server.url}/runs/{run.id}")
        notifications = page.locator("#notifications")
        # The section looks again while the run just ended: the firing and then its outcome.
        expect(notifications.locator("li.firing")).to_contain_text(name)
        expect(notifications.locator(".outcome")).to_contain_text("Done call-webhook")
        screenshot(page, "run-page-notifications")
        (request,) = receiver.wait_for(1)
        assert request.path == f"/hooks/secret-{tag}"

    notifications.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    firing = page.locator("table.firings tbody tr, table.firings tr").filter(has_text=run_name)
    expect(firing).to_contain_text("Done call-webhook")
    expect(firing).to_contain_text("after 1 attempt")
    assert f"secret-{tag}" not in page.content()
    screenshot(page, "automation-page-firing")

    page.goto(f"{ui_server.url}/events?resource=anabranch.flow-run.{run.id}")
    failed = page.locator("table.events tr.event").filter(has_text="anabranch.flow-run.Failed")
    expect(failed).to_contain_text("RuntimeError: the warehouse is closed")
    screenshot(page, "events-of-a-run")
    failed.get_by_role("link", name=run_name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(run_name)


def test_a_run_without_firings_says_none(ui_server, page, tmp_path) -> None:
    flow_name, run_name = f"quiet-{uuid.uuid4().hex[:8]}", f"quiet-run-{uuid.uuid4().hex[:8]}"
    run_script(tmp_path, FAILING, run_name, flow_name, env=ui_server.env)
    (run,) = ui_server.client.read_flow_runs(flow_name=flow_name)
    page.goto(f"{ui_server.url}/runs/{run.id}")
    expect(page.locator("#notifications")).to_contain_text("None")
