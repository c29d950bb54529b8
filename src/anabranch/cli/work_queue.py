"""`anabranch work-queue ...`: the lanes of a work pool, served by priority (1 first), each
with an optional limit of its own."""

from __future__ import annotations

import typer

from anabranch.cli import render
from anabranch.cli.options import (
    NEGATIVE_NUMBERS_AS_ARGUMENTS,
    OUTPUT,
    Output,
    input_errors,
    whole_number,
)
from anabranch.client import get_client

app = typer.Typer(
    help="Create and change the queues of a work pool (lower priority numbers go first).",
    no_args_is_help=True,
)

_NAME = typer.Argument(..., metavar="NAME", help="The queue's name.")
_POOL = typer.Option(..., "--pool", "-p", help="The work pool the queue belongs to.")


@app.command(context_settings=NEGATIVE_NUMBERS_AS_ARGUMENTS)
@input_errors
def create(
    name: str = _NAME,
    pool: str = _POOL,
    concurrency_limit: str | None = typer.Option(
        None, "--concurrency-limit", metavar="N", help="At most N runs of the queue at once."
    ),
    priority: str | None = typer.Option(
        None, "--priority", metavar="N", help="1 or more; lower numbers are served first."
    ),
    description: str | None = typer.Option(None, "--description", "-d"),
) -> None:
    """Create a queue in a pool; for an existing queue, set what is given."""
    limit = None if concurrency_limit is None else whole_number(
        concurrency_limit, "--concurrency-limit"
    )
    rank = None if priority is None else whole_number(priority, "--priority", minimum=1)
    client = get_client()
    existed = name in {q.name for q in client.read_work_queues(work_pool_name=pool)}
    queue = client.create_work_queue(
        name, work_pool_name=pool, priority=rank, concurrency_limit=limit,
        description=description,
    )
    render.work_queue_saved(queue, "Updated" if existed else "Created")


@app.command("ls")
@input_errors
def ls(
    pool: str | None = typer.Option(None, "--pool", "-p", help="Only this pool's queues."),
    output: Output = OUTPUT,
) -> None:
    """List queues by pool, then priority."""
    queues = get_client().read_work_queues(work_pool_name=pool)
    if output is Output.json:
        render.print_json([render.work_queue_json(queue) for queue in queues])
    elif queues:
        render.work_queues_table(queues)
    else:
        render.note("No work queues; `anabranch work-pool create NAME` makes a pool and its "
                    "'default' queue.")


@app.command()
@input_errors
def inspect(name: str = _NAME, pool: str = _POOL, output: Output = OUTPUT) -> None:
    """Show a queue: priority, limit, active runs, paused or not."""
    queue = get_client().read_work_queue(name, work_pool_name=pool)
    if output is Output.json:
        render.print_json(render.work_queue_json(queue))
    else:
        render.work_queue_detail(queue)


@app.command("set-concurrency-limit", context_settings=NEGATIVE_NUMBERS_AS_ARGUMENTS)
@input_errors
def set_concurrency_limit(
    name: str = _NAME,
    limit: str = typer.Argument(..., metavar="N", help="At most N runs of the queue at once."),
    pool: str = _POOL,
) -> None:
    """Let at most N runs of the queue run at once."""
    size = whole_number(limit, "N")
    queue = get_client().update_work_queue(name, work_pool_name=pool, concurrency_limit=size)
    render.work_queue_saved(queue, "Updated")


@app.command("clear-concurrency-limit")
@input_errors
def clear_concurrency_limit(name: str = _NAME, pool: str = _POOL) -> None:
    """Remove the queue's own limit (the pool's still applies)."""
    queue = get_client().update_work_queue(name, work_pool_name=pool, concurrency_limit=None)
    render.work_queue_saved(queue, "Updated")


@app.command()
@input_errors
def pause(name: str = _NAME, pool: str = _POOL) -> None:
    """Stop handing the queue's runs to workers; runs already started go on."""
    queue = get_client().update_work_queue(name, work_pool_name=pool, paused=True)
    render.work_queue_saved(queue, "Paused")


@app.command()
@input_errors
def resume(name: str = _NAME, pool: str = _POOL) -> None:
    """Hand the queue's runs to workers again."""
    queue = get_client().update_work_queue(name, work_pool_name=pool, paused=False)
    render.work_queue_saved(queue, "Resumed")


@app.command()
@input_errors
def delete(name: str = _NAME, pool: str = _POOL) -> None:
    """Delete a queue (a pool's 'default' queue goes only with its pool)."""
    get_client().delete_work_queue(name, work_pool_name=pool)
    render.deleted(f"work queue {name!r} of work pool {pool!r}")
