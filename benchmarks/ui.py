"""The web UI at scale: its pages for a parent of 10,000 child flow runs in a store of
100,000, served by a real `anabranch server start`, timed over HTTP and in Chromium.

Usage: python benchmarks/ui.py [--repeats 5] [--backends sqlite postgresql] [--timeout 240]
       [--json]

Each store (``sqlite``: a fresh SQLite file; ``postgresql``: a throwaway database
``anabranch_bench_<hex>`` on the local server, dropped afterwards, skipped when PostgreSQL
does not answer) is measured in a fresh child process with a clean environment:

- Data, written through ``EmbeddedClient.write_batch`` in batches of 5,000 before the server
  starts: a root parent (Running, the newest root run) with 10,000 child flow runs of three
  flows (3 Failed with a message, the rest Completed, each with start and end times, created
  over the last hour); and root runs of 20 flows with 4 children each (1 root in 20 Failed),
  created over 30 days, up to 100,000 flow runs in all. Run snapshots only: no state
  history, task runs or logs. The server starts more than the live watcher's LOOK_BACK
  (5 s) after the last write, so its first looks do not see the load (see the last item).
- HTTP (httpx, one keep-alive connection, wall time of the whole response): the run page
  ``/runs/{id}``, the runs list ``/``, the children tab's pages 1 and 2
  (``/runs/{id}/children?page=N``), and ``/runs/{id}/timeline.json``; one warm-up each, then
  the median of ``--repeats``.
- Chromium (Debian's /usr/bin/chromium through Playwright, headless, 1400x900; one warm-up
  then ``--repeats`` fresh pages in one context): from the Navigation and Paint Timing
  entries, first contentful paint and the load event of the run page and the runs list;
  when the children tab's first page is in the run page (a MutationObserver); the number of
  DOM elements at the load event and once that page is in. Requests are listened to, never
  intercepted (a Playwright route handler would hold each request until this process next
  calls Playwright).
- Live: with the parent's run page open and its SSE stream connected (``htmx:sseOpen``), a
  new Failed child is written through the HTTP client and the time until the page's header
  shows its name is taken, ``--repeats`` times after a warm-up; then the parent goes
  Running -> Completed (once); then a new root run on the open runs list, ``--repeats``
  times. Time from just before the write to Playwright seeing the text (polled every frame).
  Last: one batch of 600 root runs (more than the watcher's MAX_CHANGES, 500), then, after
  LOOK_BACK, one more new root run, given 10 s to show.
- The store operations the pages call, each timed through an EmbeddedClient on the same
  database (median of 3 after one call), to tell which query a slow page waits on.

``run()`` returns the figures as a dict (for ``benchmarks/run.py``); ``report()`` prints them
against the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve()
BACKENDS = ("sqlite", "postgresql")
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
TOTAL_RUNS = 100_000
CHILDREN = 10_000
FAILED_CHILDREN = 3
KIDS_PER_ROOT = 4
BATCH = 5_000
LIVE_TIMEOUT_MS = 15_000
BURST = 600  # runs in one batch, above the live watcher's MAX_CHANGES (500)
BURST_WAIT_MS = 10_000

# Each figure must stay below its target (times in ms, live in s, DOM in elements).
TARGETS: dict[str, float] = {
    "run_page_html_ms": 150.0,
    "run_page_fcp_ms": 1000.0,
    "run_page_dom": 3000.0,
    "runs_list_html_ms": 1000.0,
    "runs_list_load_ms": 1000.0,
    "children_page2_ms": 200.0,
    "live_s": 2.0,
}

# Recorded in every page: when the children tab's list appeared, the DOM size at load, and
# whether the page's SSE stream is open.
INIT_SCRIPT = """
(() => {
  window.__bench = {tree: null, domAtLoad: null, sseOpen: false};
  const look = () => {
    if (window.__bench.tree === null && document.querySelector('ul.tree li')) {
      window.__bench.tree = performance.now();
    }
  };
  new MutationObserver(look).observe(document, {childList: true, subtree: true});
  window.addEventListener('load', () => {
    window.__bench.domAtLoad = document.getElementsByTagName('*').length;
  });
  document.addEventListener('htmx:sseOpen', () => { window.__bench.sseOpen = true; });
})();
"""
PAGE_FIGURES = """
() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByType('paint')
    .find((entry) => entry.name === 'first-contentful-paint');
  return {
    response_start_ms: nav.responseStart, response_end_ms: nav.responseEnd,
    dcl_ms: nav.domContentLoadedEventEnd, load_ms: nav.loadEventEnd,
    fcp_ms: fcp ? fcp.startTime : null, tree_ms: window.__bench.tree,
    dom_at_load: window.__bench.domAtLoad,
    dom_now: document.getElementsByTagName('*').length,
  };
}
"""


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": values,
    }


# ---- inside the measurement process ---------------------------------------------------------


def load_store(database_url: str) -> dict[str, Any]:
    """Write the parent, its children and the other runs; returns ids and counts."""
    from anabranch.client.embedded import EmbeddedClient
    from anabranch.schemas import FlowRun, RecordBatch, State, StateType

    rng = random.Random(11)
    now = datetime.now(timezone.utc)
    completed = State(type=StateType.COMPLETED, name="Completed", timestamp=now)
    failed = State(
        type=StateType.FAILED, name="Failed", message="ValueError: bad row 42", timestamp=now
    )
    parent = FlowRun(
        name="bench-ui-parent",
        flow_name="bench-ui-parent",
        state=State(type=StateType.RUNNING, name="Running", timestamp=now),
        start_time=now - timedelta(hours=1),
        created=now - timedelta(hours=1),
    )
    runs: list[FlowRun] = [parent]
    failed_at = set(rng.sample(range(CHILDREN), FAILED_CHILDREN))
    for i in range(CHILDREN):
        start = now - timedelta(hours=1) + timedelta(seconds=i * 0.3)
        runs.append(
            FlowRun(
                name=f"child-{i:05d}",
                flow_name=("extract", "transform", "load")[i % 3],
                parent_flow_run_id=parent.id,
                state=failed if i in failed_at else completed,
                start_time=start,
                end_time=start + timedelta(seconds=rng.uniform(0.5, 20)),
                created=start,
            )
        )
    roots = 0
    while len(runs) < TOTAL_RUNS:
        created = now - timedelta(days=30) + timedelta(seconds=roots * 100)
        root = FlowRun(
            name=f"root-{roots:05d}",
            flow_name=f"flow-{roots % 20:02d}",
            state=failed if roots % 20 == 7 else completed,
            start_time=created,
            end_time=created + timedelta(seconds=60),
            created=created,
        )
        runs.append(root)
        roots += 1
        for k in range(min(KIDS_PER_ROOT, TOTAL_RUNS - len(runs))):
            start = created + timedelta(seconds=k * 10)
            runs.append(
                FlowRun(
                    name=f"{root.name}-kid-{k}",
                    flow_name=f"flow-{roots % 20:02d}-kid",
                    parent_flow_run_id=root.id,
                    state=completed,
                    start_time=start,
                    end_time=start + timedelta(seconds=8),
                    created=start,
                )
            )
    client = EmbeddedClient(database_url)
    started = time.perf_counter()
    for i in range(0, len(runs), BATCH):
        client.write_batch(RecordBatch(flow_runs=runs[i : i + BATCH]))
    elapsed = time.perf_counter() - started
    return {
        "parent": parent,
        "flow_runs": len(runs),
        "children": CHILDREN,
        "failed_children": FAILED_CHILDREN,
        "roots": roots + 1,
        "load_s": elapsed,
    }


def _time_get(http: Any, url: str, repeats: int, **kwargs: Any) -> dict[str, Any]:
    http.get(url, **kwargs).raise_for_status()  # warm-up
    times, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = http.get(url, **kwargs)
        times.append((time.perf_counter() - started) * 1e3)
        response.raise_for_status()
        size = len(response.content)
    return {**_stats(times), "bytes": size}


def measure_http(base: str, parent_id: uuid.UUID, repeats: int) -> dict[str, Any]:
    import httpx

    with httpx.Client(base_url=base, timeout=60) as http:
        figures = {
            "run_page": _time_get(http, f"/runs/{parent_id}", repeats),
            "runs_list": _time_get(http, "/", repeats),
            "children_page1": _time_get(http, f"/runs/{parent_id}/children", repeats),
            "children_page2": _time_get(http, f"/runs/{parent_id}/children?page=2", repeats),
            "timeline_json": _time_get(
                http, f"/runs/{parent_id}/timeline.json", max(2, repeats // 2)
            ),
        }
        rows = http.get(f"/runs/{parent_id}/timeline.json").json()["rows"]
        figures["timeline_json"]["rows"] = len(rows)
    return figures


def _browser() -> tuple[Any, Any]:
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    return playwright, browser


def _context(browser: Any, errors: list[str], external: list[str]) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    context.set_default_timeout(LIVE_TIMEOUT_MS)

    def off_machine(request: Any) -> None:
        # Listened to, not intercepted: a route handler would hold every request until this
        # process next calls Playwright, and add a round trip to each.
        url = request.url
        if not url.startswith(("data:", "blob:", "about:")) and urlsplit(url).hostname not in (
            "127.0.0.1",
            "localhost",
        ):
            external.append(url)

    context.on("request", off_machine)
    context.add_init_script(INIT_SCRIPT)
    context.on("weberror", lambda error: errors.append(str(error.error)))
    return context


def _open(context: Any, url: str, ready: str) -> tuple[Any, dict[str, Any]]:
    page = context.new_page()
    page.goto(url, wait_until="load")
    page.wait_for_selector(ready)
    page.wait_for_function(  # the paint entry may be recorded a little after the load event
        "() => performance.getEntriesByType('paint')"
        ".some((entry) => entry.name === 'first-contentful-paint')"
    )
    return page, page.evaluate(PAGE_FIGURES)


def measure_browser(browser: Any, base: str, parent_id: uuid.UUID, repeats: int) -> dict[str, Any]:
    errors: list[str] = []
    external: list[str] = []
    context = _context(browser, errors, external)
    figures: dict[str, Any] = {}
    try:
        for name, path, ready in (
            ("run_page", f"/runs/{parent_id}", "ul.tree li"),
            ("runs_list", "/", "table.runs tbody"),
        ):
            samples = []
            for i in range(repeats + 1):  # the first is a warm-up
                page, sample = _open(context, base + path, ready)
                page.close()
                if i:
                    samples.append(sample)
            figures[name] = {
                key: _stats([s[key] for s in samples])
                for key in samples[0]
                if all(s[key] is not None for s in samples)
            }
    finally:
        context.close()
    figures["page_errors"] = errors
    figures["external_requests"] = external
    return figures


def measure_live(
    browser: Any, base: str, api_url: str, parent: Any, repeats: int
) -> dict[str, Any]:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from anabranch.client.http import HTTPClient
    from anabranch.schemas import FlowRun, RecordBatch, State, StateType

    errors: list[str] = []
    external: list[str] = []
    context = _context(browser, errors, external)
    client = HTTPClient(api_url, retry_seconds=10)
    figures: dict[str, Any] = {}

    def until_shown(
        page: Any,
        write: Callable[[], None],
        script: str,
        arg: str,
        timeout_ms: float = LIVE_TIMEOUT_MS,
    ) -> float:
        started = time.perf_counter()
        write()
        page.wait_for_function(script, arg=arg, timeout=timeout_ms)
        return time.perf_counter() - started

    def connected(page: Any) -> None:
        page.wait_for_function("() => window.__bench.sseOpen")

    try:
        page, _ = _open(context, f"{base}/runs/{parent.id}", "ul.tree li")
        connected(page)
        in_header = "name => document.getElementById('run-header').textContent.includes(name)"
        times = []
        for i in range(repeats + 1):  # the first is a warm-up
            now = datetime.now(timezone.utc)
            child = FlowRun(
                name=f"late-failure-{i}-{uuid.uuid4().hex[:6]}",
                flow_name="load",
                parent_flow_run_id=parent.id,
                state=State(type=StateType.FAILED, name="Failed", message="late", timestamp=now),
                start_time=now - timedelta(seconds=1),
                end_time=now,
                created=now,
            )
            batch = RecordBatch(flow_runs=[child])
            seconds = until_shown(
                page, lambda b=batch: client.write_batch(b), in_header, child.name
            )
            if i:
                times.append(seconds)
        figures["failed_child_on_run_page"] = _stats(times)
        now = datetime.now(timezone.utc)
        done = parent.model_copy(
            update={
                "state": State(type=StateType.COMPLETED, name="Completed", timestamp=now),
                "end_time": now,
            }
        )
        badge = "text => document.querySelector('.run-title .badge').textContent.trim() === text"
        seconds = until_shown(
            page, lambda: client.write_batch(RecordBatch(flow_runs=[done])), badge, "Completed"
        )
        figures["parent_completed_on_run_page"] = _stats([seconds])
        page.close()

        page, _ = _open(context, base + "/", "table.runs tbody")
        connected(page)
        in_list = "name => document.getElementById('runs').textContent.includes(name)"
        times = []
        for i in range(repeats + 1):
            now = datetime.now(timezone.utc)
            root = FlowRun(
                name=f"late-root-{i}-{uuid.uuid4().hex[:6]}",
                flow_name="flow-00",
                state=State(type=StateType.RUNNING, name="Running", timestamp=now),
                start_time=now,
                created=now,
            )
            batch = RecordBatch(flow_runs=[root])
            seconds = until_shown(page, lambda b=batch: client.write_batch(b), in_list, root.name)
            if i:
                times.append(seconds)
        figures["root_run_on_runs_list"] = _stats(times)

        # Last, as it may leave the page deaf: one batch of more runs than the watcher's
        # MAX_CHANGES, then (after its LOOK_BACK) one more new root run.
        from anabranch.orchestration.summaries import MAX_CHANGES
        from anabranch.server.ui.live import LOOK_BACK

        now = datetime.now(timezone.utc)
        burst = [
            FlowRun(
                name=f"burst-{i}",
                flow_name="flow-01",
                state=State(type=StateType.COMPLETED, name="Completed", timestamp=now),
                start_time=now,
                end_time=now,
                created=now,
            )
            for i in range(BURST)
        ]
        client.write_batch(RecordBatch(flow_runs=burst))
        time.sleep(LOOK_BACK.total_seconds() + 1)
        root = FlowRun(
            name=f"after-burst-{uuid.uuid4().hex[:6]}",
            flow_name="flow-00",
            state=State(type=StateType.RUNNING, name="Running"),
        )
        try:
            seconds = until_shown(
                page,
                lambda: client.write_batch(RecordBatch(flow_runs=[root])),
                in_list,
                root.name,
                timeout_ms=BURST_WAIT_MS,
            )
            figures["root_run_after_burst"] = _stats([seconds])
        except PlaywrightTimeout:
            figures["root_run_after_burst"] = {"not_shown_within_s": BURST_WAIT_MS / 1e3}
        figures["root_run_after_burst"].update(burst=BURST, max_changes=MAX_CHANGES)
        page.close()
    finally:
        context.close()
        client.close()
    figures["page_errors"] = errors
    figures["external_requests"] = external
    return figures


def measure_operations(database_url: str, parent_id: uuid.UUID) -> dict[str, Any]:
    """The store operations behind each page, through an EmbeddedClient: median of 3, in ms."""
    from anabranch.client.embedded import EmbeddedClient
    from anabranch.schemas import StateType

    client = EmbeddedClient(database_url)
    failed = [StateType.FAILED, StateType.CRASHED]
    page1 = client.read_flow_runs(parent_flow_run_id=parent_id, failed_first=True, limit=51)
    page2 = client.read_flow_runs(
        parent_flow_run_id=parent_id, failed_first=True, limit=51, offset=50
    )
    roots = client.read_flow_runs(root_only=True, limit=51)
    calls: dict[str, Callable[[], Any]] = {
        "read_flow_run(parent)": lambda: client.read_flow_run(parent_id),
        "summarize_children([parent], by_flow)": lambda: client.summarize_children(
            flow_run_ids=[parent_id], by_flow=True
        ),
        "read_flow_runs(parent, failed, limit=50)": lambda: client.read_flow_runs(
            parent_flow_run_id=parent_id, state_types=failed, limit=50
        ),
        "read_task_runs(parent, failed, limit=50)": lambda: client.read_task_runs(
            flow_run_id=parent_id, state_types=failed, limit=50
        ),
        "read_flow_runs(parent, failed_first, limit=51)": lambda: client.read_flow_runs(
            parent_flow_run_id=parent_id, failed_first=True, limit=51
        ),
        "read_flow_runs(parent, failed_first, limit=51, offset=50)": lambda: (
            client.read_flow_runs(
                parent_flow_run_id=parent_id, failed_first=True, limit=51, offset=50
            )
        ),
        "summarize_children(50 children)": lambda: client.summarize_children(
            flow_run_ids=[run.id for run in page1[:50]]
        ),
        "summarize_children(50 children, page 2)": lambda: client.summarize_children(
            flow_run_ids=[run.id for run in page2[:50]]
        ),
        "read_flow_runs(root_only, limit=51)": lambda: client.read_flow_runs(
            root_only=True, limit=51
        ),
        "summarize_children(50 roots)": lambda: client.summarize_children(
            flow_run_ids=[run.id for run in roots[:50]]
        ),
        "read_flows(recent=0)": lambda: client.read_flows(recent=0),
        "read_flow_runs(parent) (all children)": lambda: client.read_flow_runs(
            parent_flow_run_id=parent_id
        ),
        "read_run_changes(since=now-5s)": lambda: client.read_run_changes(
            since=datetime.now(timezone.utc) - timedelta(seconds=5)
        ),
    }
    figures = {}
    for name, call in calls.items():
        call()
        times = []
        for _ in range(3):
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1e3)
        figures[name] = statistics.median(times)
    return figures


def measure(backend: str, repeats: int) -> dict[str, Any]:
    """Everything for one store, in this (child) process."""
    from bench_server import _server, _store

    figures: dict[str, Any] = {"backend": backend, "repeats": repeats}
    with tempfile.TemporaryDirectory(prefix="anabranch-bench-ui-") as folder:
        home = Path(folder)
        with _store(backend, home) as database_url:
            data = load_store(database_url)
            # The server's live watcher first looks LOOK_BACK before its start: runs written
            # just before would fill its first looks (see root_run_after_burst).
            from anabranch.server.ui.live import LOOK_BACK

            time.sleep(LOOK_BACK.total_seconds() + 1)
            parent = data.pop("parent")
            figures["data"] = data
            with _server(database_url, home) as api_url:
                base = api_url.removesuffix("/api")
                figures["http"] = measure_http(base, parent.id, repeats)
                playwright, browser = _browser()
                try:
                    figures["browser"] = measure_browser(browser, base, parent.id, repeats)
                    figures["operations"] = measure_operations(database_url, parent.id)
                    figures["live"] = measure_live(browser, base, api_url, parent, repeats)
                finally:
                    browser.close()
                    playwright.stop()
            from anabranch.database import get_engine

            get_engine(database_url).dispose()  # before the throwaway database is dropped
    return figures


# ---- the driver -----------------------------------------------------------------------------


def _measure_in_child(backend: str, repeats: int, timeout: float) -> dict[str, Any]:
    from bench_server import _clean_env

    with tempfile.TemporaryDirectory(prefix="anabranch-bench-ui-client-") as home:
        env = _clean_env(ANABRANCH_HOME=home)
        try:
            proc = subprocess.run(
                [sys.executable, str(HERE), "--measure", backend, "--repeats", str(repeats)],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                cwd=home,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:g} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no result printed"])[-1]}
    return json.loads(lines[-1])


def run(
    timeout: float = 240.0, repeats: int = 5, backends: tuple[str, ...] = BACKENDS
) -> dict[str, Any]:
    """Every measurement on every store; ``timeout`` bounds each store's child process."""
    from bench_server import postgres_unreachable

    figures: dict[str, Any] = {"cpus": os.cpu_count(), "stores": {}}
    figures["load_before"] = list(os.getloadavg())
    if not os.access(CHROMIUM, os.X_OK):
        figures["skipped"] = f"{CHROMIUM} is missing (Debian: apt-get install -y chromium)"
        return figures
    for backend in backends:
        if backend == "postgresql":
            unreachable = postgres_unreachable()
            if unreachable:
                figures["stores"][backend] = {"skipped": unreachable}
                continue
        figures["stores"][backend] = _measure_in_child(backend, repeats, timeout)
    figures["load_after"] = list(os.getloadavg())
    return figures


def _row(
    backend: str, what: str, stats: dict[str, Any] | None, key: str | None, unit: str
) -> list[str]:
    """One table row: median, min-max and the verdict against ``TARGETS[key]`` (if any)."""
    if stats is None:
        return [backend, what, "n/a", "-", "-"]
    if unit == "ms":
        median, spread = f"{stats['median']:.0f} ms", f"{stats['min']:.0f}-{stats['max']:.0f}"
    elif unit == "s":
        median, spread = f"{stats['median']:.2f} s", f"{stats['min']:.2f}-{stats['max']:.2f}"
    else:
        median, spread = f"{stats['median']:,.0f}", f"{stats['min']:,.0f}-{stats['max']:,.0f}"
    target = "-"
    if key is not None:
        bound = TARGETS[key]
        shown = {"ms": f"{bound:,.0f} ms", "s": f"{bound:g} s"}.get(unit, f"{bound:,.0f}")
        target = f"< {shown}: {'PASS' if stats['median'] < bound else 'FAIL'}"
    return [backend, what, median, spread, target]


def report(figures: dict[str, Any]) -> str:
    from workloads import table

    if "skipped" in figures:
        return f"skipped: {figures['skipped']}"

    lines = [
        f"{figures['cpus']} CPUs, load average {figures['load_before'][0]:.1f} before, "
        f"{figures.get('load_after', [float('nan')])[0]:.1f} after"
    ]
    rows: list[list[str]] = []
    ops_rows: list[list[str]] = []
    for backend, res in figures["stores"].items():
        if "skipped" in res or "error" in res:
            rows.append([backend, "skipped" if "skipped" in res else "ERROR"] + ["-"] * 3)
            lines.append(f"{backend}: {res.get('skipped') or res.get('error')}")
            continue
        data, http, browser, live = res["data"], res["http"], res["browser"], res["live"]
        lines.append(
            f"{backend}: {data['flow_runs']:,} flow runs ({data['roots']:,} roots; the parent has "
            f"{data['children']:,} children, {data['failed_children']} Failed) written in "
            f"{data['load_s']:.1f} s; median of {res['repeats']} after a warm-up"
        )

        def add(
            what: str,
            stats: dict[str, Any] | None,
            key: str | None,
            unit: str = "ms",
            store: str = backend,
        ) -> None:
            rows.append(_row(store, what, stats, key, unit))

        run_page, runs_list = browser["run_page"], browser["runs_list"]
        add("run page HTML (GET /runs/{id})", http["run_page"], "run_page_html_ms")
        add("run page first contentful paint", run_page.get("fcp_ms"), "run_page_fcp_ms")
        add("run page load event", run_page.get("load_ms"), None)
        add("run page children tab page 1 in", run_page.get("tree_ms"), None)
        add("run page DOM elements at load", run_page.get("dom_at_load"), "run_page_dom", "n")
        add("run page DOM elements, children in", run_page.get("dom_now"), "run_page_dom", "n")
        add("runs list HTML (GET /)", http["runs_list"], "runs_list_html_ms")
        add("runs list first contentful paint", runs_list.get("fcp_ms"), None)
        add("runs list load event (Chromium)", runs_list.get("load_ms"), "runs_list_load_ms")
        add("runs list DOM elements", runs_list.get("dom_now"), None, "n")
        add("children page 1 HTML", http["children_page1"], None)
        add("children page 2 HTML", http["children_page2"], "children_page2_ms")
        add("new Failed child shown on run page", live["failed_child_on_run_page"], "live_s", "s")
        add("parent Running->Completed shown", live["parent_completed_on_run_page"], "live_s", "s")
        add("new root run shown on runs list", live["root_run_on_runs_list"], "live_s", "s")
        after = live["root_run_after_burst"]
        what = f"new root run shown after a {after['burst']}-run batch"
        if "median" in after:
            add(what, after, "live_s", "s")
        else:
            shown = f"not in {after['not_shown_within_s']:g} s"
            rows.append([backend, what, shown, "-", f"< {TARGETS['live_s']:g} s: FAIL"])
        timeline = http["timeline_json"]
        add(f"timeline.json ({timeline['rows']:,} rows, {timeline['bytes'] / 1e6:.1f} MB)",
            timeline, None)
        problems = browser["page_errors"] + live["page_errors"]
        problems += browser["external_requests"] + live["external_requests"]
        if problems:
            lines.append(f"{backend}: page errors / external requests: {problems[:5]}")
        for name, value in res["operations"].items():
            ops_rows.append([backend, name, f"{value:.1f}"])
    lines.append(table(["store", "measure", "median", "min-max", "target"], rows))
    if ops_rows:
        lines.append("store operations behind the pages (EmbeddedClient, median of 3, ms):")
        lines.append(table(["store", "operation", "ms"], ops_rows))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--timeout", type=float, default=240.0, help="per store's process")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--measure", choices=BACKENDS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeats), default=str))
        return 0
    figures = run(args.timeout, args.repeats, tuple(args.backends))
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
