"""`anabranch worker start --pool P`: a process worker that runs its pool's deployed runs,
each in a subprocess, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import typer

from anabranch.cli import render
from anabranch.cli.options import seconds, whole_number
from anabranch.client import get_client
from anabranch.workers.worker import ProcessWorker

app = typer.Typer(help="Run workers: processes that run deployed flows.", no_args_is_help=True)


@app.command()
def start(
    pool: str = typer.Option(..., "--pool", "-p", help="The work pool to take runs from."),
    work_queue: list[str] = typer.Option(
        [], "--work-queue", "-q", help="Only this queue of the pool, repeatable (default: all)."
    ),
    limit: str | None = typer.Option(
        None, "--limit", "-l", metavar="N", help="At most N runs at once in this worker."
    ),
    name: str | None = typer.Option(
        None, "--name", "-n", help="The worker's name (default: host-pid)."
    ),
    cancel_on_exit: bool = typer.Option(
        False, "--cancel-on-exit",
        help="On Ctrl-C or SIGTERM cancel running runs instead of letting them finish (a "
        "second Ctrl-C does that too).",
    ),
    grace_seconds: str = typer.Option(
        "10", "--grace-seconds", metavar="SECONDS",
        help="A cancelled run's process gets SECONDS after SIGTERM before SIGKILL.",
    ),
) -> None:
    """Take the pool's due runs and run each in a subprocess, until Ctrl-C or SIGTERM."""
    get_client().read_work_pool(pool)  # a typo fails now, not in the worker's poll loop
    worker = ProcessWorker(
        pool,
        work_queue_names=work_queue,
        limit=None if limit is None else whole_number(limit, "--limit", minimum=1),
        name=name,
        cancel_on_exit=cancel_on_exit,
        grace_seconds=seconds(grace_seconds, "--grace-seconds"),
    )
    render.note(f"Worker {worker.name!r} takes runs of work pool {pool!r}; Ctrl-C to stop.")
    worker.run()
    render.note(f"Worker {worker.name!r} stopped.")
