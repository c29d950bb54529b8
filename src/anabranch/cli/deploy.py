"""`anabranch deploy ENTRYPOINT --name NAME ...`: store a flow as a deployment that workers
of a work pool run, and say how to run it."""

from __future__ import annotations

from typing import Any

import typer

from anabranch.cli import render
from anabranch.cli.options import (
    fail,
    input_errors,
    parameters,
    seconds,
    split_pair,
    whole_number,
)
from anabranch.client import get_client
from anabranch.deployments.deploy import (
    JOB_VARIABLES,
    build_deployment_from_entrypoint,
    next_steps,
)

_JOB_VARIABLE_HELP = (
    "KEY=VALUE, repeatable: env.NAME=VALUE sets environment variable NAME of the run's "
    "process; python=/path/to/python runs the flow with that interpreter (another "
    "virtualenv); working_dir=/path is the directory the run starts in."
)


@input_errors
def deploy(
    entrypoint: str = typer.Argument(
        ...,
        metavar="ENTRYPOINT",
        help="path/to/file.py:flow_function or package.module:flow_function.",
    ),
    name: str = typer.Option(..., "--name", "-n", help="The deployment's name."),
    pool: str | None = typer.Option(
        None, "--pool", "-p", help="The work pool whose workers run it."
    ),
    work_queue: str | None = typer.Option(
        None, "--work-queue", "-q", help="A queue of the pool (default: its 'default' queue)."
    ),
    param: list[str] = typer.Option(
        [], "--param", metavar="KEY=VALUE",
        help="A default parameter, repeatable; VALUE is JSON if it parses (3, [1,2], true), "
        "else a string.",
    ),
    tag: list[str] = typer.Option(
        [], "--tag", "-t", metavar="TAG", help="A tag of its runs, repeatable."
    ),
    cron: str | None = typer.Option(
        None, "--cron", metavar="EXPR", help="Run on a cron schedule, e.g. '0 6 * * *'."
    ),
    timezone: str | None = typer.Option(
        None, "--timezone", metavar="TZ", help="The timezone of --cron (default: UTC)."
    ),
    interval: str | None = typer.Option(
        None, "--interval", metavar="SECONDS", help="Run every SECONDS seconds."
    ),
    concurrency_limit: str | None = typer.Option(
        None, "--concurrency-limit", metavar="N", help="At most N of its runs at once."
    ),
    job_variable: list[str] = typer.Option(
        [], "--job-variable", metavar="KEY=VALUE", help=_JOB_VARIABLE_HELP
    ),
    description: str | None = typer.Option(
        None, "--description", "-d", help="What it does (default: the flow's docstring)."
    ),
    version: str | None = typer.Option(
        None, "--version", help="A version label (default: the flow's version)."
    ),
    late_runs: str | None = typer.Option(
        None, "--late-runs", metavar="POLICY",
        help="Runs that could not start on time: run (all), skip (those later than "
        "--max-lateness) or latest (only the newest).",
    ),
    max_lateness: str | None = typer.Option(
        None, "--max-lateness", metavar="SECONDS",
        help="With --late-runs skip: how late is too late.",
    ),
) -> None:
    """Deploy the flow at ENTRYPOINT as FLOW/NAME, for workers of --pool to run.

    Deploying again with the same name replaces the deployment; its runs stay.
    """
    deployment = build_deployment_from_entrypoint(
        entrypoint,
        name=name,
        work_pool_name=pool,
        work_queue_name=work_queue,
        parameters=parameters(param),
        tags=tag,
        description=description,
        version=version,
        job_variables=_job_variables(job_variable),
        concurrency_limit=(
            None if concurrency_limit is None
            else whole_number(concurrency_limit, "--concurrency-limit")
        ),
        cron=cron,
        interval=None if interval is None else _interval(interval),
        timezone=timezone,
        late_run_policy=late_runs,
        max_lateness_seconds=(
            None if max_lateness is None else seconds(max_lateness, "--max-lateness")
        ),
    )
    client = get_client()
    saved = client.save_deployment(deployment)
    render.deployment_saved(saved, next_steps(saved, client))


def _job_variables(pairs: list[str]) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    for key, value in (split_pair(pair, "--job-variable") for pair in pairs):
        if key.startswith("env."):
            if not key[4:]:
                fail("--job-variable env.=... names no environment variable; write env.NAME=VALUE.")
            variables.setdefault("env", {})[key[4:]] = value
        elif key in JOB_VARIABLES and key != "env":
            variables[key] = value
        else:
            fail(
                f"Unknown job variable {key!r}; use env.NAME=VALUE, python=/path/to/python or "
                "working_dir=/path."
            )
    return variables


def _interval(value: str) -> float:
    every = seconds(value, "--interval")
    if every <= 0:
        fail(f"--interval must be a number of seconds above 0; got {value!r}.")
    return every

