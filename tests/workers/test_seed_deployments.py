"""The seed snippets that call run_deployment, run as users wrote them (``prefect`` replaced
by ``anabranch``), against children deployed with `anabranch deploy` and real workers."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from anabranch.schemas import StateType
from workers.conftest import Platform

pytestmark = [pytest.mark.embedded_only, pytest.mark.timeout(300)]

SNIPPETS = Path(__file__).parents[1] / "seeds" / "snippets"

CHILD = """
from anabranch import flow


@flow(name="Child Flow")
def child(x: int) -> int:
    return x * 10
"""

# The seed-004 platform: the children its parents trigger by name.
DATA_PLATFORM = """
from datetime import date

from anabranch import flow


@flow(log_prints=True)
def extract(start_date: date, end_date: date) -> str:
    print(f"Running ingestion from {start_date} to {end_date}")
    return "rows"


@flow(name="transform-load", log_prints=True)
def transform_load() -> None:
    print("Loaded")


@flow(log_prints=True)
def cleanup() -> None:
    print("Cleanup process")


@flow(name="raw-data-jaffle-shop")
def raw_data_jaffle_shop(start_date: date, end_date: date) -> None:
    pass


@flow(name="raw-data-marketing")
def raw_data_marketing(start_date: date, end_date: date) -> None:
    pass


@flow(name="dbt-jaffle-shop")
def dbt_jaffle_shop() -> None:
    pass


@flow(name="dbt-attribution")
def dbt_attribution() -> None:
    pass


@flow
def dashboards() -> None:
    pass


@flow(name="sales-forecast")
def sales_forecast() -> None:
    pass
"""


@pytest.fixture
def child_deployment(platform: Platform) -> Platform:
    """The seed-000 child: "Child Flow/child-deployment" on a pool limited to 10."""
    platform.write("child.py", CHILD)
    platform.cli("work-pool", "create", "children", "--concurrency-limit", "10")
    platform.deploy("child.py:child", "child-deployment", "children")
    platform.start_worker("children")
    return platform


@pytest.fixture
def data_platform(platform: Platform) -> Platform:
    platform.write("platform_flows.py", DATA_PLATFORM)
    platform.cli("work-pool", "create", "local-process")
    defaults = ("--param", "start_date=2022-12-01", "--param", "end_date=2022-12-31")
    platform.deploy("platform_flows.py:extract", "dev", "local-process", *defaults)
    for flow in ("transform_load", "cleanup"):
        platform.deploy(f"platform_flows.py:{flow}", "dev", "local-process")
    for flow in (
        "raw_data_jaffle_shop", "raw_data_marketing", "dbt_jaffle_shop", "dbt_attribution",
        "dashboards", "sales_forecast",
    ):
        platform.deploy(f"platform_flows.py:{flow}", "local-process", "local-process")
    platform.start_worker("local-process")
    return platform


@pytest.mark.parametrize(
    ("snippet", "children"),
    [
        pytest.param("seed000_trigger_child_deployments.py", 10, id="trigger-child-deployments"),
        pytest.param("seed000_option_c_pool_limited_deployments.py", 100, id="option-c"),
        pytest.param("seed000_run_deployment_with_timeout.py", 100, id="with-timeout"),
    ],
)
def test_seed_parents_trigger_child_deployments_and_get_their_runs(
    child_deployment: Platform, client, snippet: str, children: int
) -> None:
    parent_flow = runpy.run_path(str(SNIPPETS / snippet))["parent_flow"]

    runs = parent_flow()

    assert len(runs) == children
    assert sorted(run.result() for run in runs) == [10 * i for i in range(children)]
    (parent,) = client.read_flow_runs(flow_name="parent-flow")
    linked = client.read_flow_runs(parent_flow_run_id=parent.id, limit=1000)
    assert {run.id for run in linked} == {run.id for run in runs}
    assert all(run.parent_task_run_id is not None for run in linked)


@pytest.mark.parametrize(
    ("snippet", "parent_name", "children"),
    [
        pytest.param(
            "seed004_orchestrate_deployments.py", "orchestrate",
            {"extract", "transform-load", "cleanup"}, id="orchestrate-deployments",
        ),
        pytest.param(
            "seed004_parent_runs_deployments.py", "parent",
            {
                "raw-data-jaffle-shop", "raw-data-marketing", "dbt-jaffle-shop",
                "dbt-attribution", "dashboards", "sales-forecast",
            },
            id="parent-runs-deployments",
        ),
        pytest.param(
            "seed004_parent_with_backfill.py", "parent",
            {"extract", "transform-load", "cleanup"}, id="parent-with-backfill",
        ),
    ],
)
def test_seed_004_scripts_run_their_deployed_children_in_order(
    data_platform: Platform, client, snippet: str, parent_name: str, children: set[str]
) -> None:
    result = data_platform.run_python(SNIPPETS / snippet)

    assert result.returncode == 0, result.stderr + data_platform.worker_logs()
    (parent,) = client.read_flow_runs(flow_name=parent_name)
    assert parent.state.type is StateType.COMPLETED
    below = client.read_flow_runs(parent_flow_run_id=parent.id)
    assert {run.flow_name for run in below} == children
    assert all(run.state.type is StateType.COMPLETED for run in below)
    started = [run.start_time for run in sorted(below, key=lambda r: r.created)]
    assert started == sorted(started), "each child starts after the one before it"
