"""`anabranch work-pool ...`: create, list, inspect, limit, pause and delete the pools whose
workers run deployed flows."""

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
    help="Create and change work pools: where deployed runs wait for workers.",
    no_args_is_help=True,
)

_NAME = typer.Argument(..., metavar="NAME", help="The work pool's name.")


@app.command(context_settings=NEGATIVE_NUMBERS_AS_ARGUMENTS)
@input_errors
def create(
    name: str = _NAME,
    type: str = typer.Option(
        "process", "--type", help="process: each run in a subprocess of a worker."
    ),
    concurrency_limit: str | None = typer.Option(
        None, "--concurrency-limit", metavar="N", help="At most N runs of the pool at once."
    ),
    description: str | None = typer.Option(None, "--description", "-d"),
) -> None:
    """Create a work pool (with its 'default' queue); for an existing pool, set the limit."""
    limit = None if concurrency_limit is None else whole_number(
        concurrency_limit, "--concurrency-limit"
    )
    client = get_client()
    existed = name in {pool.name for pool in client.read_work_pools()}
    pool = client.create_work_pool(
        name, type=type, concurrency_limit=limit, description=description
    )
    render.work_pool_saved(pool, "Updated" if existed else "Created")


@app.command("ls")
@input_errors
def ls(output: Output = OUTPUT) -> None:
    """List work pools with their limits, active runs and online workers."""
    pools = get_client().read_work_pools()
    if output is Output.json:
        render.print_json([render.work_pool_json(pool) for pool in pools])
    elif pools:
        render.work_pools_table(pools)
    else:
        render.note("No work pools; create one with `anabranch work-pool create NAME`.")


@app.command()
@input_errors
def inspect(name: str = _NAME, output: Output = OUTPUT) -> None:
    """Show a pool: its limit and active runs, its queues, and its workers."""
    client = get_client()
    pool = client.read_work_pool(name)
    queues = client.read_work_queues(work_pool_name=name)
    workers = client.read_workers(name)
    if output is Output.json:
        render.print_json(render.work_pool_json(pool, queues, workers))
    else:
        render.work_pool_detail(pool, queues, workers)


@app.command("set-concurrency-limit", context_settings=NEGATIVE_NUMBERS_AS_ARGUMENTS)
@input_errors
def set_concurrency_limit(
    name: str = _NAME,
    limit: str = typer.Argument(..., metavar="N", help="At most N runs of the pool at once."),
) -> None:
    """Let at most N runs of the pool run at once, across all its workers."""
    size = whole_number(limit, "N")
    render.work_pool_saved(get_client().update_work_pool(name, concurrency_limit=size), "Updated")


@app.command("clear-concurrency-limit")
@input_errors
def clear_concurrency_limit(name: str = _NAME) -> None:
    """Remove the pool's limit: its workers' own limits are all that is left."""
    render.work_pool_saved(get_client().update_work_pool(name, concurrency_limit=None), "Updated")


@app.command()
@input_errors
def pause(name: str = _NAME) -> None:
    """Stop handing the pool's runs to workers; runs already started go on."""
    render.work_pool_saved(get_client().update_work_pool(name, paused=True), "Paused")


@app.command()
@input_errors
def resume(name: str = _NAME) -> None:
    """Hand the pool's runs to workers again."""
    render.work_pool_saved(get_client().update_work_pool(name, paused=False), "Resumed")


@app.command()
@input_errors
def delete(name: str = _NAME) -> None:
    """Delete a pool and its queues; deployments naming it stay, with no worker to run them."""
    get_client().delete_work_pool(name)
    render.deleted(f"work pool {name!r}")
