"""Deploying from Python: ``flow.deploy(...)``, ``flow.to_deployment(...)`` with
``anabranch.deploy(...)``, and the checks made before anything is stored."""

from __future__ import annotations

import datetime
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import anabranch
from anabranch.deployments.deploy import build_deployment
from anabranch.deployments.entrypoints import load_flow
from anabranch.exceptions import InvalidDeployment, InvalidParameters, ObjectNotFound
from anabranch.schemas import StateType
from anabranch.schemas.deployments import DeploymentRunRequest, LateRunPolicy, Schedule
from flow_files import isolated_imports

SOURCE = """
    import datetime

    from anabranch import flow

    @flow(description="Loads one day of sales.", version="7")
    def load_sales(day: datetime.date, regions: list[str] = ["emea"], limit: int = 100) -> int:
        return limit
"""


@pytest.fixture(autouse=True)
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder with a flow file, as the current directory."""
    folder = tmp_path / "project"
    (folder / "flows").mkdir(parents=True)
    (folder / "flows" / "sales.py").write_text(textwrap.dedent(SOURCE))
    with isolated_imports(tmp_path, monkeypatch):
        monkeypatch.chdir(folder)
        yield folder


@pytest.fixture
def load_sales() -> Any:
    return load_flow("flows/sales.py:load_sales")


@pytest.fixture
def pool(client) -> str:
    client.create_work_pool("etl-pool", concurrency_limit=10)
    return "etl-pool"


def test_flow_deploy_returns_the_id_of_the_stored_deployment(
    client, load_sales, pool: str, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment_id = load_sales.deploy(
        "daily",
        work_pool_name=pool,
        parameters={"limit": 5},
        tags=["sales"],
        job_variables={"env": {"REGION": "emea"}},
        concurrency_limit=2,
        cron="0 6 * * *",
        timezone="Europe/Paris",
        late_run_policy="latest",
    )

    assert isinstance(deployment_id, uuid.UUID)
    stored = client.read_deployment_by_name("load-sales/daily")
    assert stored.id == deployment_id
    assert stored.entrypoint == "flows/sales.py:load_sales"
    assert stored.job_variables == {"env": {"REGION": "emea"}, "working_dir": str(project)}
    assert stored.parameters == {"limit": 5}
    assert stored.tags == ["sales"]
    assert stored.concurrency_limit == 2
    assert stored.description == "Loads one day of sales."
    assert stored.version == "7"
    assert stored.schedules == [Schedule(cron="0 6 * * *", timezone="Europe/Paris")]
    assert stored.late_run_policy is LateRunPolicy.LATEST
    assert stored.work_queue_name == "default"
    printed = capsys.readouterr().out
    assert "anabranch deployment run load-sales/daily" in printed
    assert "anabranch worker start --pool etl-pool" in printed


def test_deploying_again_replaces_the_deployment_and_keeps_its_id(
    client, load_sales, pool: str
) -> None:
    first = load_sales.deploy("daily", pool, print_next_steps=False)
    second = load_sales.deploy("daily", pool, parameters={"limit": 1}, print_next_steps=False)

    assert first == second
    assert client.read_deployment(first).parameters == {"limit": 1}


def test_runs_of_the_deployment_are_checked_against_the_flow_signature(
    client, load_sales, pool: str
) -> None:
    deployment_id = load_sales.deploy("daily", pool, print_next_steps=False)

    run = client.create_flow_run_from_deployment(
        deployment_id, DeploymentRunRequest(parameters={"day": "2025-03-01"})
    )
    assert run.state.type is StateType.SCHEDULED
    assert run.parameters == {"day": "2025-03-01"}
    with pytest.raises(InvalidParameters, match="limit"):
        client.create_flow_run_from_deployment(
            deployment_id, DeploymentRunRequest(parameters={"day": "2025-03-01", "limit": "x"})
        )
    with pytest.raises(InvalidParameters, match="day"):
        client.create_flow_run_from_deployment(deployment_id, DeploymentRunRequest())


def test_default_parameters_are_coerced_as_a_call_would_and_stored_as_json(load_sales) -> None:
    deployment = build_deployment(
        load_sales,
        name="daily",
        parameters={"day": datetime.date(2025, 3, 1), "limit": "5", "regions": ("apac",)},
    )

    assert deployment.parameters == {"day": "2025-03-01", "limit": 5, "regions": ["apac"]}


def test_an_unknown_default_parameter_is_refused_naming_what_the_flow_takes(load_sales) -> None:
    with pytest.raises(InvalidParameters, match=r"no parameter 'regoins'; it takes: day, "
                       r"regions, limit"):
        build_deployment(load_sales, name="daily", parameters={"regoins": ["emea"]})


def test_an_ill_typed_default_parameter_is_refused(load_sales) -> None:
    with pytest.raises(InvalidParameters, match="Parameter 'limit' of flow 'load-sales'"):
        build_deployment(load_sales, name="daily", parameters={"limit": "plenty"})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "a/b"}, "can not be a deployment name"),
        ({"name": ""}, "can not be a deployment name"),
        ({"cron": "* * * * *", "interval": 60}, "not cron and interval"),
        ({"interval": 0}, "above 0"),
        ({"cron": "0 6 * * *", "timezone": "Mars/Olympus"}, "Unknown timezone 'Mars/Olympus'"),
        ({"timezone": "UTC"}, "applies to a cron or interval"),
        ({"job_variables": {"pyhton": "/usr/bin/python3"}}, "Unknown job variable 'pyhton'"),
        ({"job_variables": {"env": "A=1"}}, "'env' must map"),
        ({"late_run_policy": "sometimes"}, "choose one of run, skip, latest"),
        ({"max_lateness_seconds": -1}, "0 or more"),
        ({"concurrency_limit": -1}, "0 or more"),
        ({"schedules": [{"cron": "* * * * *", "interval": 5}]}, "Invalid schedule"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_stored(
    load_sales, options: dict[str, Any], message: str
) -> None:
    options = {"name": "daily", **options}

    with pytest.raises(InvalidDeployment, match=message):
        build_deployment(load_sales, **options)


def test_a_missing_work_pool_says_how_to_create_it(load_sales) -> None:
    with pytest.raises(ObjectNotFound, match="anabranch work-pool create nowhere"):
        load_sales.deploy("daily", "nowhere", print_next_steps=False)


def test_intervals_may_be_seconds_or_timedeltas(load_sales) -> None:
    deployment = build_deployment(
        load_sales, name="often", interval=[90, datetime.timedelta(hours=1)]
    )

    assert [s.interval for s in deployment.schedules] == [90.0, 3600.0]


def test_a_working_dir_makes_the_entrypoint_relative_to_it(load_sales, project: Path) -> None:
    deployment = build_deployment(
        load_sales, name="daily", job_variables={"working_dir": str(project / "flows")}
    )

    assert deployment.entrypoint == "sales.py:load_sales"
    assert deployment.job_variables["working_dir"] == str(project / "flows")
    assert load_flow(deployment.entrypoint, deployment.job_variables["working_dir"]) is load_sales


def test_an_entrypoint_outside_the_working_dir_is_stored_absolute(
    load_sales, project: Path, tmp_path: Path
) -> None:
    deployment = build_deployment(
        load_sales, name="daily", job_variables={"working_dir": str(tmp_path / "elsewhere")}
    )

    assert deployment.entrypoint == f"{project / 'flows' / 'sales.py'}:load_sales"


def test_without_schema_enforcement_any_parameters_are_accepted(
    client, load_sales, pool: str
) -> None:
    deployment_id = load_sales.deploy(
        "loose", pool, enforce_parameter_schema=False, print_next_steps=False
    )

    assert client.read_deployment(deployment_id).parameter_schema is None
    client.create_flow_run_from_deployment(
        deployment_id, DeploymentRunRequest(parameters={"anything": 1})
    )


def test_anabranch_deploy_saves_several_deployments_into_one_pool(
    client, load_sales, pool: str
) -> None:
    ids = anabranch.deploy(
        load_sales.to_deployment("hourly", interval=3600),
        load_sales.to_deployment("nightly", cron="0 2 * * *"),
        work_pool_name=pool,
    )

    assert [client.read_deployment(i).full_name for i in ids] == [
        "load-sales/hourly",
        "load-sales/nightly",
    ]
    assert {client.read_deployment(i).work_pool_name for i in ids} == {pool}


def test_star_args_defaults_are_checked_as_a_list(project: Path) -> None:
    (project / "variadic.py").write_text(
        "from anabranch import flow\n\n@flow\ndef total(*amounts: int) -> int:\n"
        "    return sum(amounts)\n"
    )
    total = load_flow("variadic.py:total")

    assert build_deployment(total, name="t", parameters={"amounts": ["1", 2]}).parameters == {
        "amounts": [1, 2]
    }
    with pytest.raises(InvalidParameters, match="Parameter 'amounts'"):
        build_deployment(total, name="t", parameters={"amounts": 3})
