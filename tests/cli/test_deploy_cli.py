"""`anabranch deploy ENTRYPOINT ...` and `anabranch deployment ...` on flows written to
real files; `anabranch flow-run cancel` of a deployment's run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anabranch.schemas import StateType
from anabranch.schemas.deployments import Deployment, WorkerPoll
from cli_runner import ANABRANCH, ok, one_line_error, run_script
from flow_files import isolated_imports

FLOWS = """
    import datetime

    from anabranch import flow

    @flow
    def load_sales(day: datetime.date, regions: list[str] = ["emea"], limit: int = 100) -> int:
        return limit

    @flow
    def anything(a=None, b=None, c=None, d=None, e=None, f=None):
        return a

    @flow
    def nightly(limit: int = 1) -> int:
        return limit

    @flow
    def fails(limit: int = 1) -> int:
        raise ValueError("bad row 7")
"""


@pytest.fixture(autouse=True)
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder holding flows/sales.py, as the current directory."""
    folder = tmp_path / "project"
    (folder / "flows").mkdir(parents=True)
    (folder / "flows" / "sales.py").write_text(textwrap.dedent(FLOWS))
    with isolated_imports(tmp_path, monkeypatch):
        monkeypatch.chdir(folder)
        yield folder



@pytest.fixture
def pool(client) -> str:
    client.create_work_pool("etl", concurrency_limit=10)
    return "etl"


def inspect(cli, name: str) -> dict[str, Any]:
    return json.loads(ok(cli("deployment", "inspect", name, "--output", "json")))


def run_id(output: str) -> uuid.UUID:
    (found,) = re.findall(r"Created flow run .*: ([0-9a-f-]{36})", output)
    return uuid.UUID(found)


def test_deploy_then_inspect_shows_what_was_given(pool: str, project: Path) -> None:
    # python= names an interpreter only the workers' hosts have: the flow is described here.
    deployed = run_script(
        "deploy", "flows/sales.py:load_sales", "--name", "daily", "--pool", pool,
        "--work-queue", "fast", "--param", "limit=3", "--param", 'regions=["apac","amer"]',
        "--tag", "sales", "--tag", "nightly", "--cron", "0 6 * * *", "--timezone",
        "Europe/Paris", "--concurrency-limit", "2", "--job-variable", "env.DB_URL=sqlite://",
        "--job-variable", "python=/opt/venvs/sales/bin/python", "--description", "Sales",
        "--late-runs", "skip", "--max-lateness", "600",
    )
    shown = json.loads(ok(run_script("deployment", "inspect", "load-sales/daily", "-o", "json")))

    assert "Deployed 'load-sales/daily'" in ok(deployed)
    assert shown["full_name"] == "load-sales/daily"
    assert shown["entrypoint"] == "flows/sales.py:load_sales"
    assert shown["work_pool_name"] == "etl"
    assert shown["work_queue_name"] == "fast"
    assert shown["parameters"] == {"limit": 3, "regions": ["apac", "amer"]}
    assert shown["tags"] == ["sales", "nightly"]
    assert [(s["cron"], s["timezone"]) for s in shown["schedules"]] == [
        ("0 6 * * *", "Europe/Paris")
    ]
    assert shown["concurrency_limit"] == 2
    assert shown["job_variables"] == {
        "env": {"DB_URL": "sqlite://"},
        "python": "/opt/venvs/sales/bin/python",
        "working_dir": str(project),
    }
    assert shown["description"] == "Sales"
    assert (shown["late_run_policy"], shown["max_lateness_seconds"]) == ("skip", 600)
    assert shown["parameter_schema"]["required"] == ["day"]


def test_deploy_says_how_to_run_it_and_to_start_a_worker(cli, pool: str) -> None:
    output = ok(cli("deploy", "flows/sales.py:nightly", "--name", "n", "--pool", pool))

    assert "anabranch deployment run nightly/n" in output
    assert "No worker of work pool 'etl' is online; start one: anabranch worker start --pool etl" \
        in output


def test_param_values_are_json_when_they_parse_else_strings(cli, pool: str) -> None:
    ok(cli(
        "deploy", "flows/sales.py:anything", "--name", "p", "--pool", pool,
        "--param", "a=3", "--param", "b=abc", "--param", "c=[1, 2]", "--param", 'd="3"',
        "--param", "e=true", "--param", "f=x=y",
    ))

    assert inspect(cli, "anything/p")["parameters"] == {
        "a": 3, "b": "abc", "c": [1, 2], "d": "3", "e": True, "f": "x=y",
    }


def test_params_are_coerced_to_the_flow_s_annotations(cli, pool: str) -> None:
    ok(cli("deploy", "flows/sales.py:load_sales", "--name", "d", "--pool", pool,
           "--param", "day=2025-03-01", "--param", "limit=7"))

    assert inspect(cli, "load-sales/d")["parameters"] == {"day": "2025-03-01", "limit": 7}


def test_job_variables_set_env_python_and_working_dir(cli, pool: str, tmp_path: Path) -> None:
    ok(cli(
        "deploy", "flows/sales.py:nightly", "--name", "j", "--pool", pool,
        "--job-variable", "env.A=1", "--job-variable", "env.B=two words",
        "--job-variable", f"working_dir={tmp_path}", "--job-variable", f"python={sys.executable}",
    ))

    shown = inspect(cli, "nightly/j")
    assert shown["job_variables"] == {
        "env": {"A": "1", "B": "two words"},
        "working_dir": str(tmp_path),
        "python": sys.executable,
    }
    assert shown["entrypoint"] == "project/flows/sales.py:nightly"


def test_an_interval_schedule(cli, pool: str) -> None:
    ok(cli("deploy", "flows/sales.py:nightly", "--name", "i", "--pool", pool,
           "--interval", "3600"))

    assert [s["interval"] for s in inspect(cli, "nightly/i")["schedules"]] == [3600]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("flows/sales.py",), "does not name a flow function"),
        (("flows/nope.py:nightly",), "nope.py does not exist"),
        (("flows/sales.py:nighty",), "has no 'nighty'; the flows in it are: anything, fails"),
        (("flows/sales.py:datetime",), "is a module, not a flow"),
        (("flows/sales.py:nightly", "--param", "limt=3"), "has no parameter 'limt'"),
        (("flows/sales.py:nightly", "--param", "limit=lots"), "Parameter 'limit'"),
        (("flows/sales.py:nightly", "--param", "limit"), "--param takes KEY=VALUE"),
        (("flows/sales.py:nightly", "--job-variable", "pyhton=x"), "Unknown job variable"),
        (("flows/sales.py:nightly", "--concurrency-limit", "-1"), "0 or more"),
        (("flows/sales.py:nightly", "--cron", "* * * * *", "--interval", "5"), "not cron and"),
        (("flows/sales.py:nightly", "--interval", "0"), "above 0"),
        (("flows/sales.py:nightly", "--cron", "0 6 * * *", "--timezone", "Nowhere/City"),
         "Unknown timezone"),
        (("flows/sales.py:nightly", "--late-runs", "sometimes"), "run, skip, latest"),
        (("flows/sales.py:nightly", "--pool", "nowhere"), "No work pool named 'nowhere'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_1(
    cli, pool: str, args: tuple[str, ...], message: str
) -> None:
    entrypoint, *rest = args
    name_and_pool = ["--name", "bad"] + ([] if "--pool" in rest else ["--pool", pool])

    assert message in one_line_error(cli("deploy", entrypoint, *name_and_pool, *rest))


def test_a_flow_is_described_by_the_interpreter_its_job_variables_name(
    cli, pool: str, project: Path, tmp_path: Path
) -> None:
    # The flow imports a package this interpreter lacks; the deployment's environment
    # (here: the same interpreter with PYTHONPATH from its env job variable) has it.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "only_there.py").write_text("TABLE = 'sales'\n")
    (project / "isolated.py").write_text(textwrap.dedent("""
        import only_there
        from anabranch import flow

        @flow(description=f"Loads {only_there.TABLE}.")
        def load(limit: int = 1) -> int:
            return limit
    """))
    args = ["deploy", "isolated.py:load", "--name", "iso", "--pool", pool,
            "--param", "limit=3", "--job-variable", f"env.PYTHONPATH={elsewhere}"]

    assert "only_there" in one_line_error(cli(*args))
    ok(cli(*args, "--job-variable", f"python={sys.executable}"))

    shown = inspect(cli, "load/iso")
    assert shown["description"] == "Loads sales."
    assert shown["parameters"] == {"limit": 3}
    assert shown["parameter_schema"]["properties"]["limit"]["type"] == "integer"
    assert "only_there" not in sys.modules


@pytest.mark.parametrize(
    ("entrypoint", "extra", "message"),
    [
        ("flows/sales.py:nighty", (), "has no 'nighty'; the flows in it are"),
        ("flows/sales.py:nightly", ("--param", "limit=lots"), "Parameter 'limit'"),
    ],
)
def test_errors_found_by_another_interpreter_read_as_if_found_here(
    cli, pool: str, entrypoint: str, extra: tuple[str, ...], message: str
) -> None:
    python = ("--job-variable", f"python={sys.executable}")
    args = ("deploy", entrypoint, "--name", "x", "--pool", pool, *python, *extra)

    assert message in one_line_error(cli(*args))


def test_an_interpreter_without_anabranch_is_named_with_the_fix(
    cli, pool: str, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)

    line = one_line_error(cli(
        "deploy", "flows/sales.py:nightly", "--name", "x", "--pool", pool,
        "--job-variable", f"python={bare / 'bin' / 'python'}",
    ))

    assert "could not describe the flow" in line and "install anabranch" in line


def test_the_installed_script_reports_an_import_error_in_one_line(project: Path) -> None:
    (project / "broken.py").write_text("import not_installed_anywhere_xyz\n")

    line = one_line_error(run_script("deploy", "broken.py:f", "--name", "x"))

    assert "ModuleNotFoundError" in line
    assert "not_installed_anywhere_xyz" in line


# anabranch deployment ...


def test_ls_lists_deployments_in_a_table_and_as_json(cli, pool: str) -> None:
    ok(cli("deploy", "flows/sales.py:nightly", "--name", "b", "--pool", pool))
    ok(cli("deploy", "flows/sales.py:load_sales", "--name", "a", "--pool", pool))

    table = ok(cli("deployment", "ls"))
    listed = json.loads(ok(cli("deployment", "ls", "--output", "json")))

    assert [d["full_name"] for d in listed] == ["load-sales/a", "nightly/b"]
    assert "load-sales/a" in table
    assert "flows/sales.py:nightly" in table


def test_run_creates_a_scheduled_run_with_the_parameters_over_the_defaults(
    cli, client, pool: str
) -> None:
    ok(cli("deploy", "flows/sales.py:load_sales", "--name", "d", "--pool", pool,
           "--param", "limit=7"))

    output = ok(cli("deployment", "run", "load-sales/d", "--param", "day=2025-03-01"))

    flow_run = client.read_flow_run(run_id(output))
    assert flow_run.state.type is StateType.SCHEDULED
    assert flow_run.parameters == {"day": "2025-03-01", "limit": 7}
    assert flow_run.work_pool_name == "etl"


def test_run_with_parameters_the_flow_refuses_is_one_line(cli, pool: str) -> None:
    ok(cli("deploy", "flows/sales.py:load_sales", "--name", "d", "--pool", pool))

    missing = one_line_error(cli("deployment", "run", "load-sales/d"))
    unknown = one_line_error(
        cli("deployment", "run", "load-sales/d", "--param", "day=2025-03-01", "--param", "x=1")
    )

    assert "'day' is a required property" in missing
    assert "'x' was unexpected" in unknown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("deployment", "inspect", "nightly"), "not a deployment name; address a deployment"),
        (("deployment", "inspect", "nightly/nope"), "No deployment 'nightly/nope'"),
        (("deployment", "run", "nightly/nope"), "No deployment 'nightly/nope'"),
        (("deployment", "delete", "nightly/nope"), "No deployment 'nightly/nope'"),
        (("deployment", "backfill", "nightly/x", "--start", "March", "--end", "2025-03-07"),
         "--start must be an ISO 8601 date"),
        (("deployment", "run", "nightly/x", "--watch", "--timeout", "soon"), "--timeout"),
    ],
)
def test_bad_deployment_input_is_one_line(cli, args: tuple[str, ...], message: str) -> None:
    assert message in one_line_error(cli(*args))


def test_pause_resume_and_delete(cli, client, pool: str) -> None:
    ok(cli("deploy", "flows/sales.py:nightly", "--name", "n", "--pool", pool,
           "--cron", "0 1 * * *"))
    waiting = run_id(ok(cli("deployment", "run", "nightly/n")))

    ok(cli("deployment", "pause", "nightly/n"))
    assert inspect(cli, "nightly/n")["paused"] is True
    ok(cli("deployment", "resume", "nightly/n"))
    assert inspect(cli, "nightly/n")["paused"] is False
    ok(cli("deployment", "delete", "nightly/n"))

    assert json.loads(ok(cli("deployment", "ls", "-o", "json"))) == []
    assert client.read_flow_run(waiting).state.type is StateType.CANCELLED


def test_backfill_creates_one_run_per_scheduled_time_in_the_range(
    cli, client, pool: str
) -> None:
    ok(cli("deploy", "flows/sales.py:nightly", "--name", "daily", "--pool", pool,
           "--cron", "0 6 * * *"))

    output = ok(cli("deployment", "backfill", "nightly/daily",
                    "--start", "2025-03-01T00:00:00+00:00", "--end", "2025-03-07T23:59:00+00:00"))

    runs = client.read_flow_runs(flow_name="nightly")
    assert "Created 7 runs of deployment 'nightly/daily'" in output
    assert sorted(run.expected_start_time.isoformat() for run in runs) == [
        f"2025-03-0{day}T06:00:00+00:00" for day in range(1, 8)
    ]


def test_backfill_end_before_start_is_refused(cli, pool: str) -> None:
    ok(cli("deploy", "flows/sales.py:nightly", "--name", "daily", "--pool", pool,
           "--cron", "0 6 * * *"))

    line = one_line_error(
        cli("deployment", "backfill", "nightly/daily", "--start", "2025-03-07", "--end",
            "2025-03-01")
    )

    assert "is before --start" in line


# anabranch flow-run cancel


def test_cancel_a_scheduled_deployment_run(cli, client, pool: str) -> None:
    ok(cli("deploy", "flows/sales.py:nightly", "--name", "n", "--pool", pool))
    flow_run_id = run_id(ok(cli("deployment", "run", "nightly/n")))

    output = ok(cli("flow-run", "cancel", str(flow_run_id)))

    assert client.read_flow_run(flow_run_id).state.type is StateType.CANCELLED
    assert str(flow_run_id) in output
    assert "Cancelled" in output


def test_cancelling_a_finished_run_again_needs_descendants(cli, pool: str) -> None:
    ok(cli("deploy", "flows/sales.py:nightly", "--name", "n", "--pool", pool))
    flow_run_id = str(run_id(ok(cli("deployment", "run", "nightly/n"))))
    ok(cli("flow-run", "cancel", flow_run_id))

    line = one_line_error(cli("flow-run", "cancel", flow_run_id))
    output = ok(cli("flow-run", "cancel", flow_run_id, "--descendants"))

    assert "is Cancelled already" in line
    assert "--descendants" in line
    assert "Nothing to cancel" in output


# A real worker


@pytest.fixture
def worker(pool: str) -> Iterator[subprocess.Popen[str]]:
    """`anabranch worker start --pool etl`, stopped with Ctrl-C (SIGINT) afterwards."""
    process = subprocess.Popen(
        [ANABRANCH, "worker", "start", "--pool", pool, "--name", "test-worker"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    yield process
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def test_run_watch_follows_the_run_to_its_end_on_a_worker(
    cli, pool: str, worker: subprocess.Popen[str]
) -> None:
    ok(cli("deploy", "flows/sales.py:nightly", "--name", "ok", "--pool", pool))
    ok(cli("deploy", "flows/sales.py:fails", "--name", "bad", "--pool", pool))
    elsewhere = {**os.environ}

    completed = subprocess.run(
        [ANABRANCH, "deployment", "run", "nightly/ok", "--watch", "--timeout", "60"],
        capture_output=True, text=True, timeout=90, env=elsewhere, cwd="/",
    )
    failed = subprocess.run(
        [ANABRANCH, "deployment", "run", "fails/bad", "--watch", "--timeout", "60"],
        capture_output=True, text=True, timeout=90, env=elsewhere, cwd="/",
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-1].split()[-1] == "Completed"
    shown = ok(cli("flow-run", "inspect", str(run_id(completed.stdout))))
    assert re.search(r"pool 'etl', worker 'test-worker', pid \d+", shown)
    assert failed.returncode == 1
    assert "ended Failed" in failed.stderr
    assert "bad row 7" in failed.stderr


def test_a_served_deployment_without_its_process_says_so(cli, client) -> None:
    served = client.save_deployment(
        Deployment(name="n", flow_name="nightly", entrypoint="flows/sales.py:nightly")
    )
    assert "no serve process" in ok(cli("deployment", "ls"))
    asked = cli("deployment", "run", "nightly/n")
    assert asked.returncode == 0
    assert "No process is serving 'nightly/n' (never)" in asked.stderr

    # What a `serve` process's poll does:
    client.poll_work(None, WorkerPoll(worker_name="serve-1", deployment_ids=[served.id]))
    listed = ok(cli("deployment", "ls"))
    assert "served" in listed and "no serve process" not in listed
    assert "No process is serving" not in cli("deployment", "run", "nightly/n").stderr


def test_flow_run_ls_keeps_a_deployment_s_runs_with_their_scheduled_time(cli, pool) -> None:
    ok(cli("deploy", "flows/sales.py:nightly", "--name", "n", "--pool", pool))
    ok(cli("deploy", "flows/sales.py:nightly", "--name", "other", "--pool", pool))
    mine = run_id(ok(cli("deployment", "run", "nightly/n")))
    run_id(ok(cli("deployment", "run", "nightly/other")))

    listed = ok(cli("flow-run", "ls", "--deployment", "nightly/n"))
    assert str(mine) in listed and "Scheduled" in listed.splitlines()[0]
    assert len([line for line in listed.splitlines()[1:] if line.strip()]) == 1
