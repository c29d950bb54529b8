"""`anabranch concurrency-limit ...`: create, list, inspect, change, free and delete the named
limits that ``concurrency()``, task tags and ``concurrency_limit=`` take slots of."""

from __future__ import annotations

import enum
import math

import typer

from anabranch.cli import render
from anabranch.cli.options import typed
from anabranch.client import get_client
from anabranch.schemas.concurrency import MAX_STORED_INT

app = typer.Typer(help="Create, inspect and change named concurrency limits.", no_args_is_help=True)


class Output(str, enum.Enum):
    table = "table"
    json = "json"


_OUTPUT = typer.Option(Output.table, "--output", "-o", help="table for people, json for scripts.")
_NAME = typer.Argument(
    ..., metavar="NAME", help="The limit's name: a task tag, or what concurrency() names."
)
_DECAY_HELP = "Slots taken by rate_limit() free up at this rate (slots per second); 0 for none."
# A negative LIMIT ("-1") would otherwise read as an unknown option; it reaches the parser
# below instead and gets a message about the limit.
_NEGATIVE_NUMBERS_AS_ARGUMENTS = {"ignore_unknown_options": True}


@app.command(context_settings=_NEGATIVE_NUMBERS_AS_ARGUMENTS)
def create(
    name: str = _NAME,
    limit: str = typer.Argument(..., metavar="LIMIT", help="How many slots, 0 or more."),
    slot_decay_per_second: str | None = typer.Option(
        None, "--slot-decay-per-second", metavar="RATE", help=_DECAY_HELP
    ),
) -> None:
    """Create a limit of LIMIT slots, or resize the limit NAME if it exists."""
    size = _parse_limit(limit, "LIMIT")
    decay = _parse_decay(slot_decay_per_second)
    client = get_client()
    if decay is None:  # not given: an existing limit's decay is the store's business
        saved = client.create_concurrency_limit(name, size)
    else:
        saved = client.create_concurrency_limit(name, size, slot_decay_per_second=decay)
    render.concurrency_limit_saved(saved, created=saved.created == saved.updated)


@app.command("ls")
def ls(output: Output = _OUTPUT) -> None:
    """List every limit with its slots in use."""
    limits = get_client().read_concurrency_limits()
    if output is Output.json:
        render.print_json([render.concurrency_limit_json(limit, live=False) for limit in limits])
    elif limits:
        render.concurrency_limits_table(limits)
    else:
        render.note(
            "No concurrency limits; create one with "
            "`anabranch concurrency-limit create NAME LIMIT`."
        )


@app.command()
def inspect(name: str = _NAME, output: Output = _OUTPUT) -> None:
    """Show a limit, who holds its slots (and until when), and how many wait."""
    limit = get_client().read_concurrency_limit(name)
    if output is Output.json:
        render.print_json(render.concurrency_limit_json(limit, live=True))
    else:
        render.concurrency_limit_detail(limit)


@app.command(context_settings=_NEGATIVE_NUMBERS_AS_ARGUMENTS)
def update(
    name: str = _NAME,
    limit: str | None = typer.Option(
        None, "--limit", metavar="LIMIT", help="How many slots, 0 or more."
    ),
    active: bool | None = typer.Option(
        None, "--active/--inactive", help="An inactive limit limits nothing until reactivated."
    ),
    slot_decay_per_second: str | None = typer.Option(
        None, "--slot-decay-per-second", metavar="RATE", help=_DECAY_HELP
    ),
) -> None:
    """Change a limit's size, whether it is active, or its slot decay."""
    if limit is None and active is None and slot_decay_per_second is None:
        render.error(
            "Nothing to update: pass --limit N, --active or --inactive, or "
            "--slot-decay-per-second RATE."
        )
        raise typer.Exit(1)
    saved = get_client().update_concurrency_limit(
        name,
        limit=None if limit is None else _parse_limit(limit, "--limit"),
        active=active,
        slot_decay_per_second=_parse_decay(slot_decay_per_second),
    )
    render.concurrency_limit_saved(saved, created=False)


@app.command()
def reset(name: str = _NAME) -> None:
    """Free every slot of a limit; its holders keep running, counted by nothing."""
    render.concurrency_limit_reset(get_client().reset_concurrency_limit(name))


@app.command()
def delete(name: str = _NAME) -> None:
    """Delete a limit; its holders keep running, and its name limits nothing any more."""
    get_client().delete_concurrency_limit(name)
    render.concurrency_limit_deleted(name)


def _parse_limit(value: str, what: str) -> int:
    try:
        parsed = int(value)
    except ValueError:
        parsed = -1
    if parsed < 0:
        render.error(f"{what} must be a whole number of slots, 0 or more; got {typed(value)}.")
        raise typer.Exit(1)
    if parsed > MAX_STORED_INT:
        render.error(f"{what} must be at most {MAX_STORED_INT:,} slots; got {typed(value)}.")
        raise typer.Exit(1)
    return parsed


def _parse_decay(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        parsed = float(value)
    except ValueError:
        parsed = -1.0
    if not math.isfinite(parsed) or parsed < 0:
        render.error(
            f"--slot-decay-per-second must be a number of slots per second, 0 or more; "
            f"got {value!r}."
        )
        raise typer.Exit(1)
    return parsed
