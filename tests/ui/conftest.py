"""Browser tests of the web UI: real `anabranch server start` processes (tests/server_harness.py)
on fresh SQLite stores, driven by Debian's Chromium (/usr/bin/chromium) through Playwright's sync
API. Playwright never downloads a browser here.

    def test_runs_page(ui_server, page, screenshot):    # ui_server: one per test module
        ui_server.client.create_flow_run(...)           # data through the HTTP client
        page.goto(ui_server.url + "/")
        expect(page.get_by_role("heading")).to_have_text("Runs")
        screenshot(page, "runs-page")                   # tests/ui/screenshots/runs-page.png

    def test_empty_store(start_ui_server, page):
        server = start_ui_server(api_key="secret")     # a server of this test's own

Chromium missing: the tests skip, except in CI (CI set) where they fail. They run on the
default (embedded) pass only: with --transport server-* they are skipped, as each starts its
own server anyway. Every page aborts requests that leave the loopback interface (nothing may
load from the internet) and the test fails if one was tried or if the page threw an uncaught
JavaScript error. Waits are Playwright's auto-waiting with a 15 s ceiling, never sleeps.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from anabranch.client.http import HTTPClient
from server_harness import Server, clean_env, start_server

HERE = Path(__file__).resolve().parent
SCREENSHOTS = HERE / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000  # generous, to tell a hang from a slow machine; never a sleep
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}
TIMEZONE = "Europe/Paris"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}

expect.set_options(timeout=TIMEOUT_MS)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--transport") == "embedded":
        return
    skip = pytest.mark.skip(reason="UI tests run on the embedded pass only (own server)")
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each phase's report on the item, so ``page`` can screenshot a failed test."""
    outcome = yield
    if item.path.is_relative_to(HERE):
        report = outcome.get_result()
        setattr(item, f"ui_report_{report.when}", report)


# --- servers --------------------------------------------------------------------------------


@dataclass
class UiServer:
    """A running server for the browser: ``url`` is its base URL (pages at ``url + "/..."``,
    API at ``api_url``), ``client`` an HTTP client of it (with its key, if any), ``env`` the
    environment for a subprocess (flow, worker, CLI) that should record to it."""

    server: Server
    client: HTTPClient
    env: dict[str, str] = field(repr=False)

    @property
    def url(self) -> str:
        return self.server.url.removesuffix("/api")

    @property
    def api_url(self) -> str:
        return self.server.url

    @property
    def api_key(self) -> str | None:
        return self.server.api_key

    def output(self) -> str:
        """What the server printed so far (its log)."""
        return self.server.output()

    def __repr__(self) -> str:
        return f"UiServer({self.url!r})"


def _start(folder: Path, api_key: str | None, settings: dict[str, str]) -> UiServer:
    store = folder / "store"
    store.mkdir(parents=True)
    server = start_server(f"sqlite:///{store / 'anabranch.db'}", folder, api_key=api_key,
                          **settings)
    env = clean_env(ANABRANCH_HOME=str(folder / "client-home"), ANABRANCH_API_URL=server.url)
    if api_key:
        env["ANABRANCH_API_KEY"] = api_key
    return UiServer(server, server.client(), env)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """The module's server (no API key), shared by its tests, so each test should tell its
    data apart by unique names; a test that needs an empty store uses ``start_ui_server``."""
    running = _start(tmp_path_factory.mktemp("ui-server"), None, {})
    yield running
    running.server.stop()


@pytest.fixture
def start_ui_server(tmp_path: Path) -> Iterator[Callable[..., UiServer]]:
    """``start_ui_server(api_key=None, **ANABRANCH_settings) -> UiServer``: a server of this
    test's own, on a new SQLite store with its own ANABRANCH_HOME and free port; stopped
    after the test (SIGTERM, then kill)."""
    started: list[UiServer] = []

    def start(*, api_key: str | None = None, **settings: str) -> UiServer:
        started.append(_start(tmp_path / f"ui-server-{len(started)}", api_key, settings))
        return started[-1]

    yield start
    for running in started:
        running.server.stop()


@pytest.fixture
def ui_server_with_key(start_ui_server: Callable[..., UiServer]) -> UiServer:
    """A server of this test's own that requires ``Authorization: Bearer <.api_key>`` (a
    random key)."""
    return start_ui_server(api_key=secrets.token_urlsafe(16))


# --- browser --------------------------------------------------------------------------------


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread
# while it is started, and other tests in the same xdist worker call asyncio.run().
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is missing (Debian: apt-get install -y chromium)"
        if _in_ci():
            pytest.fail(message + "; CI must run the UI tests.", pytrace=False)
        pytest.skip(message + "; the UI tests need it.")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh profile (no cookies, no storage) at 1400x900, light, Paris time, en-US."""
    context = browser.new_context(
        viewport=VIEWPORT,
        timezone_id=TIMEZONE,
        locale="en-US",
        color_scheme="light",
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in its own context; fails the test if it asked for anything off this machine or
    threw an uncaught JavaScript error. A failed test leaves screenshots/FAILED-<test>.png."""
    external: list[str] = []
    errors: list[str] = []

    def only_loopback(route, req) -> None:
        url = urlsplit(req.url)
        if url.scheme in ("data", "blob", "about") or url.hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            external.append(req.url)
            route.abort("blockedbyclient")

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    report = getattr(request.node, "ui_report_call", None)
    if report is not None and report.failed:
        _save(page, "FAILED-" + request.node.name)
    page.close()
    problems = [f"request off this machine (aborted): {url}" for url in external]
    problems += [f"uncaught JavaScript error: {error}" for error in errors]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _save(page: Page, name: str, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@pytest.fixture
def screenshot() -> Callable[..., Path]:
    """``screenshot(page, name, full_page=True) -> Path``: tests/ui/screenshots/<name>.png
    (git-ignored; names should be unique across tests, which may run in parallel)."""
    return _save
