"""The runs list and the run pages, in Chromium against a real server: a parent of 300
children is found at once and its one failed child on its first screen; pages update live;
a run is cancelled from its page; user data is shown as text."""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.sync_api import expect
from ui_scripts import CHATTY, FAILING_TASK, FAMILY, GATED, run_script

from anabranch.schemas import FlowRun, RecordBatch, State, StateType


def test_a_parent_of_300_children_shows_its_one_failure_first(
    ui_server, page, screenshot, tmp_path
) -> None:
    name = f"nightly-{uuid.uuid4().hex[:6]}"
    run_script(tmp_path, FAMILY, name, "300", "137", env=ui_server.env)

    page.goto(ui_server.url + "/")
    parent_row = page.locator("tr[data-run]", has=page.get_by_role("link", name=name))
    expect(parent_row).to_contain_text("300 children: 1 failed, 299 completed")
    expect(parent_row).to_be_in_viewport()
    # The children are not listed beside their parent: only root runs are.
    expect(page.locator("table.runs").get_by_text("(child)")).to_have_count(0)
    screenshot(page, "runs-list-parent-of-300")

    parent_row.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    failed = page.locator(".attention").get_by_role("link")
    expect(failed).to_have_count(1)
    expect(page.locator(".attention")).to_contain_text("child 137 could not read its input")
    expect(failed).to_be_in_viewport()
    # The children tab lists them at once, failed first.
    expect(page.locator("ul.tree > li > .node").first).to_contain_text("child 137 could not")
    screenshot(page, "run-page-parent-of-300", full_page=False)

    failed.click()
    expect(page.locator(".message")).to_contain_text("ValueError: child 137 could not read")
    back = page.locator(".crumbs").get_by_role("link", name=name)
    screenshot(page, "run-page-failed-child")
    back.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)


def test_the_children_tab_pages_and_expands_in_place(ui_server, page, tmp_path) -> None:
    name = f"fanout-{uuid.uuid4().hex[:6]}"
    run_script(tmp_path, FAMILY, name, "120", "77", env=ui_server.env)
    (parent,) = ui_server.client.read_flow_runs(name_contains=name)

    page.goto(f"{ui_server.url}/runs/{parent.id}?tab=children")
    nodes = page.locator("ul.tree > li > .node")
    expect(nodes).to_have_count(50)
    # Failed first: the one failure heads the list.
    expect(nodes.first).to_contain_text("Failed")
    page.get_by_role("button", name=re.compile("Show the next 50 children")).click()
    expect(nodes).to_have_count(100)
    page.get_by_role("button", name=re.compile("Show the next 50 children")).click()
    expect(nodes).to_have_count(120)


def test_a_run_started_after_the_page_opened_appears_and_completes_live(
    ui_server, page, screenshot, tmp_path
) -> None:
    page.goto(ui_server.url + "/")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    name = f"live-{uuid.uuid4().hex[:6]}"
    gate = tmp_path / "gate"
    process = run_script(tmp_path, GATED, name, str(gate), env=ui_server.env, wait=False)
    try:
        row = page.locator("tr[data-run]", has=page.get_by_role("link", name=name))
        expect(row).to_contain_text("Running")
        screenshot(page, "runs-list-live-running")
        gate.write_text("open")
        expect(row).to_contain_text("Completed")
    finally:
        gate.write_text("open")
        process.communicate(timeout=60)
    assert process.returncode == 0


def test_a_running_run_is_cancelled_from_its_page(
    ui_server, page, screenshot, tmp_path
) -> None:
    name = f"cancel-me-{uuid.uuid4().hex[:6]}"
    gate = tmp_path / "gate"
    process = run_script(tmp_path, GATED, name, str(gate), env=ui_server.env, wait=False)
    try:
        page.goto(ui_server.url + "/")
        page.get_by_role("link", name=name).click()
        expect(page.locator(".run-title .badge")).to_have_text("Running")
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Cancel run").click()
        expect(page.locator(".run-title .badge")).to_have_text(re.compile("Cancell(ing|ed)"))
        expect(page.locator(".run-title .badge")).to_have_text("Cancelled", timeout=60_000)
        screenshot(page, "run-page-cancelled")
    finally:
        gate.write_text("open")
        process.communicate(timeout=60)


def test_user_data_is_shown_as_text_never_run(ui_server, page) -> None:
    hostile = f'<script>alert("{uuid.uuid4().hex[:6]}")</script>'
    run = FlowRun(name=hostile, flow_name="<b>bold</b>",
                  state=State(type=StateType.FAILED, name="Failed", message="<img src=x>"))
    ui_server.client.write_batch(RecordBatch(flow_runs=[run]))
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto(ui_server.url + "/")
    expect(page.get_by_role("link", name=hostile)).to_be_visible()
    page.goto(f"{ui_server.url}/runs/{run.id}")
    expect(page.get_by_role("heading", level=1)).to_have_text(hostile)
    expect(page.locator(".message")).to_have_text("<img src=x>")
    expect(page.locator(".facts")).to_contain_text("<b>bold</b>")
    assert dialogs == []
    assert page.locator("main img").count() == 0


def test_actions_refuse_requests_from_other_sites(ui_server) -> None:
    running = State(type=StateType.RUNNING, name="Running")
    run = FlowRun(name="guarded", flow_name="guarded", state=running)
    ui_server.client.write_batch(RecordBatch(flow_runs=[run]))

    plain = httpx.post(f"{ui_server.url}/runs/{run.id}/cancel", timeout=10)
    forged = httpx.post(f"{ui_server.url}/runs/{run.id}/cancel", timeout=10, headers={
        "X-Anabranch-UI": "1", "Origin": "https://evil.example"})

    assert plain.status_code == 403 and "X-Anabranch-UI" in plain.text
    assert forged.status_code == 403
    assert ui_server.client.read_flow_run(run.id).state.type is StateType.RUNNING


def test_a_failed_task_run_shows_its_traceback_and_its_flow_run(
    ui_server, page, screenshot, tmp_path
) -> None:
    name = f"ratios-{uuid.uuid4().hex[:6]}"
    run_script(tmp_path, FAILING_TASK, name, env=ui_server.env)

    page.goto(ui_server.url + "/")
    page.get_by_role("link", name=name).click()
    # A run without subflows opens on its task runs, failed first.
    expect(page.get_by_role("tab", name="Task runs")).to_have_attribute("aria-selected", "true")
    rows = page.locator("table.task-runs tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("Failed")
    rows.first.get_by_role("link").click()

    expect(page.locator(".message")).to_contain_text("ZeroDivisionError")
    expect(page.locator(".logs")).to_contain_text("Traceback (most recent call last)")
    expect(page.locator("ol.states li")).to_have_count(3)
    screenshot(page, "task-run-page-failed")
    page.locator(".crumbs").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)


def test_several_runs_are_cancelled_at_once_from_the_list(ui_server, page) -> None:
    flow = f"waiting-{uuid.uuid4().hex[:6]}"
    scheduled = State(type=StateType.SCHEDULED, name="Scheduled")
    runs = [FlowRun(name=f"{flow}-{i}", flow_name=flow, state=scheduled) for i in range(3)]
    ui_server.client.write_batch(RecordBatch(flow_runs=runs))

    page.goto(f"{ui_server.url}/?flow={flow}")
    page.get_by_label(f"Select {flow}-0").check()
    page.get_by_label(f"Select {flow}-2").check()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel selected").click()

    expect(page.locator("#notice")).to_have_text("Cancelling 2 runs.")
    for index, state in ((0, "Cancelled"), (1, "Scheduled"), (2, "Cancelled")):
        row = page.locator("tr[data-run]", has=page.get_by_role("link", name=f"{flow}-{index}"))
        expect(row).to_contain_text(state)


def test_logs_filter_by_level_and_text_take_in_subflows_and_follow_the_tail(
    ui_server, page, screenshot, tmp_path
) -> None:
    name = f"chatty-{uuid.uuid4().hex[:6]}"
    run_script(tmp_path, CHATTY, name, env=ui_server.env)
    page.goto(ui_server.url + "/")
    page.get_by_role("link", name=name).click()
    page.get_by_role("tab", name="Logs").click()
    lines = page.locator("#log-lines .line")
    expect(lines).to_have_count(500)
    expect(lines.first).to_contain_text(f"Beginning flow run '{name}'")

    page.get_by_label("Level").select_option("warning")
    expect(lines).to_have_count(1)
    expect(lines.first).to_contain_text("disk almost full")
    page.get_by_label("include subflows' logs").check()
    expect(lines).to_have_count(2)
    expect(lines.last).to_contain_text("the helper could not reach the warehouse")

    page.get_by_label("Level").select_option("debug")
    page.get_by_label("Search").fill("LINE 59")
    expect(lines).to_have_count(10)
    # The filters are in the address: reloading shows the same lines.
    expect(page).to_have_url(re.compile("q=LINE"))
    page.reload()
    expect(lines).to_have_count(10)
    page.get_by_label("Search").fill("")
    page.get_by_label("follow").check()
    expect(lines.last).to_contain_text("Finished in state Completed")
    screenshot(page, "run-page-logs-following")


def test_flows_show_their_recent_runs_as_marks_linking_to_each(ui_server, page) -> None:
    flow = f"marks-{uuid.uuid4().hex[:6]}"
    states = [StateType.COMPLETED, StateType.FAILED, StateType.RUNNING]
    runs = [FlowRun(name=f"{flow}-{i}", flow_name=flow,
                    state=State(type=state, name=state.value.title()))
            for i, state in enumerate(states)]
    ui_server.client.write_batch(RecordBatch(flow_runs=runs))

    page.goto(ui_server.url + "/flows")
    row = page.locator("#flows tr", has=page.get_by_role("link", name=flow, exact=True))
    marks = row.locator("a.mark")
    expect(marks).to_have_count(3)
    expect(marks.nth(1)).to_have_class("mark state-failed")
    marks.nth(1).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{flow}-1")
