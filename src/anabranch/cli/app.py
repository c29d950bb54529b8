"""The `anabranch` command: the root app, `anabranch version`, and one error handler."""

from __future__ import annotations

import sys
from importlib.metadata import version as distribution_version

import typer

from anabranch.cli import (
    automation,
    concurrency_limit,
    config,
    database,
    deploy,
    deployment,
    event,
    flow_run,
    render,
    server,
    work_pool,
    work_queue,
    worker,
)
from anabranch.exceptions import AnabranchError

app = typer.Typer(
    name="anabranch",
    help="Run, inspect and operate anabranch flows.",
    no_args_is_help=True,
    # Locals may hold database URLs with passwords or an API key.
    pretty_exceptions_show_locals=False,
)
app.add_typer(config.app, name="config")
app.add_typer(flow_run.app, name="flow-run")
app.add_typer(concurrency_limit.app, name="concurrency-limit")
app.add_typer(server.app, name="server")
app.add_typer(database.app, name="database")
app.command("deploy")(deploy.deploy)
app.add_typer(deployment.app, name="deployment")
app.add_typer(work_pool.app, name="work-pool")
app.add_typer(work_queue.app, name="work-queue")
app.add_typer(worker.app, name="worker")
app.add_typer(automation.app, name="automation")
app.add_typer(event.app, name="event")


@app.command()
def version() -> None:
    """Print the installed anabranch version."""
    print(f"anabranch {distribution_version('anabranch')}")


def main() -> None:
    """Entry point of the console script: an AnabranchError (unknown id, bad setting) is a
    one-line message and exit code 1, not a traceback."""
    try:
        app()
    except AnabranchError as exc:
        render.error(str(exc))
        sys.exit(1)
