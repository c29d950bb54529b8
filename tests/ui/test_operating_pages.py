"""The pages an operator acts from, in Chromium against a real server: a deployment run
from its generated Run form, completed by a real worker with typed parameters; a
concurrency limit with its holders; the API-key prompt of a server that has a key."""

from __future__ import annotations

import subprocess
import textwrap
import uuid

import httpx
from playwright.sync_api import expect

from anabranch.schemas import FlowRun, RecordBatch, SlotRequest, State, StateType
from server_harness import ANABRANCH

TYPED_FLOW = '''
from datetime import datetime
from anabranch import flow

@flow
def report(count: int, ratio: float, loud: bool, names: list[str], due: datetime,
           title: str = "weekly") -> str:
    assert isinstance(count, int) and isinstance(ratio, float) and loud is True
    assert names == ["north", "south"] and isinstance(due, datetime), (names, due)
    return f"{title}: {count} x {ratio}"
'''


def test_a_deployment_runs_from_its_form_with_typed_parameters(
    ui_server, page, screenshot, tmp_path
) -> None:
    (tmp_path / "report.py").write_text(textwrap.dedent(TYPED_FLOW))
    pool = f"pool-{uuid.uuid4().hex[:6]}"

    def cli(*args: str) -> None:
        subprocess.run([ANABRANCH, *args], cwd=tmp_path, env=ui_server.env, check=True,
                       capture_output=True, timeout=120)

    cli("work-pool", "create", pool)
    cli("deploy", "report.py:report", "--name", "weekly", "--pool", pool)
    worker = subprocess.Popen([ANABRANCH, "worker", "start", "--pool", pool], cwd=tmp_path,
                              env=ui_server.env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        page.goto(ui_server.url + "/deployments")
        page.get_by_role("link", name="report/weekly").click()
        expect(page.get_by_label("title")).to_have_value("weekly")
        page.get_by_label("count").fill("3")
        page.get_by_label("ratio").fill("0.5")
        page.get_by_label("loud").check()
        page.get_by_label("names").fill('["north", "south"]')
        page.get_by_label("due").fill("2026-12-24T18:30:00")
        screenshot(page, "deployment-run-form")
        page.get_by_role("button", name="Run", exact=True).click()

        # Completed: the flow itself checked each parameter's type.
        expect(page.locator(".run-title .badge")).to_have_text("Completed", timeout=60_000)
        screenshot(page, "deployment-run-completed")
        (run,) = ui_server.client.read_flow_runs(flow_name="report")
        assert run.parameters["count"] == 3 and run.parameters["ratio"] == 0.5
        assert run.parameters["loud"] is True and run.parameters["names"] == ["north", "south"]
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_a_refused_parameter_is_shown_beside_its_field(ui_server, page, tmp_path) -> None:
    (tmp_path / "report.py").write_text(textwrap.dedent(TYPED_FLOW))
    pool = f"pool-{uuid.uuid4().hex[:6]}"
    for args in (["work-pool", "create", pool],
                 ["deploy", "report.py:report", "--name", "checked", "--pool", pool]):
        subprocess.run([ANABRANCH, *args], cwd=tmp_path, env=ui_server.env, check=True,
                       capture_output=True, timeout=120)
    page.goto(ui_server.url + "/deployments")
    page.get_by_role("link", name="report/checked").click()
    page.get_by_label("count").fill("3")
    page.get_by_label("ratio").fill("1")
    page.get_by_label("names").fill('{"not": "a list"}')
    page.get_by_label("due").fill("2026-12-24T18:30:00")
    page.get_by_role("button", name="Run", exact=True).click()

    error = page.locator(".field.invalid", has=page.get_by_label("names")).locator(".error")
    expect(error).to_contain_text("is not of type 'array'")
    assert ui_server.client.read_flow_runs(flow_name="report", state_names=["Scheduled"]) == []


def test_a_limit_shows_its_holders_as_links_to_their_runs(ui_server, page, screenshot) -> None:
    name = f"warehouse-{uuid.uuid4().hex[:6]}"
    client = ui_server.client
    client.create_concurrency_limit(name, 3)
    holder_run = FlowRun(name=f"load-{name}", flow_name="load",
                         state=State(type=StateType.RUNNING, name="Running"))
    client.write_batch(RecordBatch(flow_runs=[holder_run]))
    (grant,) = client.acquire_concurrency_slots(
        [SlotRequest(names=[name], holder="nightly-load", run_id=holder_run.id, occupy=2)]
    )
    assert grant.granted

    page.goto(ui_server.url + "/concurrency-limits")
    card = page.locator("section.limit", has=page.get_by_role("heading", name=name))
    expect(card).to_contain_text("2 of 3 slots in use")
    holder = card.locator("table.holders tbody tr, table.holders tr").filter(
        has_text="nightly-load"
    )
    screenshot(page, "concurrency-limit-holders")
    holder.get_by_role("link", name=f"load-{name}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"load-{name}")
    page.go_back()

    client.release_concurrency_slots(grant.lease_id)
    expect(card).to_contain_text("0 of 3 slots in use")
    expect(card).to_contain_text("No holders.")


def test_a_server_with_a_key_shows_nothing_until_the_key_is_entered(
    ui_server_with_key, page, screenshot, context
) -> None:
    server = ui_server_with_key
    page.goto(server.url + "/concurrency-limits")
    expect(page.get_by_role("heading", name="This server needs its API key")).to_be_visible()
    expect(page.locator("header.top nav")).to_have_count(0)
    screenshot(page, "api-key-prompt")

    page.get_by_label("API key").fill("not-the-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That is not this server's API key.")

    page.get_by_label("API key").fill(server.api_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Concurrency limits", level=1)).to_be_visible()
    assert server.api_key not in page.url
    (cookie,) = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert server.api_key not in cookie["value"]
    # Without the cookie, pages and the live feed stay closed; the API still wants its key.
    assert httpx.get(server.url + "/live", timeout=5).status_code == 303
    assert httpx.get(server.api_url + "/flow_runs", timeout=5).status_code == 401


def test_the_api_docs_load_from_the_package_not_the_internet(ui_server, page) -> None:
    # The page fixture fails the test if anything was asked of a host off this machine.
    page.goto(ui_server.api_url + "/docs")
    expect(page.locator(".swagger-ui .title")).to_contain_text("anabranch")
    expect(page.get_by_text("/api/flow_runs/{flow_run_id}", exact=True).first).to_be_visible()
