"""The browser-test harness itself: its server answers, Chromium reaches it, screenshots are
written, and the front-end libraries the pages load were built into the package."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from playwright.sync_api import expect

import anabranch

VENDOR = Path(anabranch.__file__).parent / "server" / "ui" / "static" / "vendor"


def test_server_answers_and_browser_loads_it(ui_server, page, screenshot):
    health = httpx.get(f"{ui_server.api_url}/health", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"

    response = page.goto(f"{ui_server.url}/api/openapi.json")
    assert response is not None and response.status == 200
    assert json.loads(page.locator("body").inner_text())["info"]["title"] == "anabranch"
    assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "Europe/Paris"
    assert page.viewport_size == {"width": 1400, "height": 900}

    page.goto(f"{ui_server.url}/api/health")
    expect(page.locator("body")).to_contain_text('"status":"ok"')
    path = screenshot(page, "harness-health")
    assert path.stat().st_size > 0


def test_server_with_api_key(ui_server_with_key):
    api_url = ui_server_with_key.api_url
    assert httpx.get(f"{api_url}/flow_runs", timeout=5).status_code == 401
    # the fixture's client carries the key
    assert ui_server_with_key.client.read_flow_runs(limit=1) == []
    assert ui_server_with_key.env["ANABRANCH_API_KEY"] == ui_server_with_key.api_key


def test_front_end_libraries_are_built():
    htmx, sse = VENDOR / "htmx.min.js", VENDOR / "sse.js"
    assert htmx.read_text().startswith("var htmx="), "run `make ui-assets`"
    assert 'defineExtension("sse"' in sse.read_text(), "run `make ui-assets`"
