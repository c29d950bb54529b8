"""`anabranch flow-run ls --tag/--since/--until`, run as the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from anabranch.client.embedded import EmbeddedClient
from anabranch.schemas import FlowRun, RecordBatch
from server_harness import ANABRANCH

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def ls(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`anabranch flow-run ls ARGS` on a store of four runs: ``early`` (tags etl, nightly)
    started at T0, ``noon`` (etl) at T0 + 1 h, ``late`` (nightly) at T0 + 2 h, and
    ``waiting`` (etl, nightly), not started. The script's local time zone is UTC+2."""
    home = tmp_path_factory.mktemp("filters-home")
    runs = [
        FlowRun(name="early", flow_name="etl", tags=["etl", "nightly"], start_time=T0),
        FlowRun(name="noon", flow_name="etl", tags=["etl"], start_time=T0 + timedelta(hours=1)),
        FlowRun(name="late", flow_name="etl", tags=["nightly"], start_time=T0 + timedelta(hours=2)),
        FlowRun(name="waiting", flow_name="etl", tags=["etl", "nightly"]),
    ]
    for i, run in enumerate(runs):
        run.created = T0 + timedelta(minutes=i)
    EmbeddedClient(f"sqlite:///{home / 'anabranch.db'}").write_batch(RecordBatch(flow_runs=runs))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANABRANCH_")}
    env.update(ANABRANCH_HOME=str(home), TZ="XST-2")  # POSIX: two hours east of UTC

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ANABRANCH, "flow-run", "ls", "--output", "json", *args],
            env=env, capture_output=True, text=True, timeout=60,
        )

    return run


def listed(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [run["name"] for run in json.loads(result.stdout)]


def test_tag_keeps_runs_with_that_tag_and_repeated_with_all_of_them(ls) -> None:
    assert listed(ls("--tag", "etl")) == ["waiting", "noon", "early"]
    assert listed(ls("--tag", "etl", "-t", "nightly")) == ["waiting", "early"]
    assert listed(ls("--tag", "nobody")) == []


def test_since_and_until_bound_the_start_time_inclusively(ls) -> None:
    assert listed(ls("--since", "2025-03-01T13:00:00Z")) == ["late", "noon"]
    assert listed(ls("--until", "2025-03-01T13:00:00+00:00")) == ["noon", "early"]
    assert listed(ls("--since", "2025-03-01T12:30Z", "--until", "2025-03-01T13:30Z")) == ["noon"]


def test_a_time_without_a_zone_is_local_time(ls) -> None:
    # 15:00 at UTC+2 is 13:00 UTC: the start of "noon".
    assert listed(ls("--since", "2025-03-01T15:00")) == ["late", "noon"]
    # A date alone is its local midnight: 2025-03-01 22:00 UTC is after every start.
    assert listed(ls("--since", "2025-03-02")) == []


def test_filters_combine(ls) -> None:
    assert listed(ls("--tag", "nightly", "--since", "2025-03-01T12:00Z")) == ["late", "early"]


def test_a_malformed_time_is_an_error_showing_the_forms_to_use(ls) -> None:
    result = ls("--since", "yesterday")

    assert result.returncode == 1
    assert "--since 'yesterday' is not a date or time" in result.stderr
    assert "2025-03-01T12:00" in result.stderr


def test_nothing_matching_is_said_in_the_table_output(ls) -> None:
    result = ls("--tag", "nobody", "--output", "table")

    assert result.returncode == 0
    assert "No flow runs match these filters." in result.stderr
