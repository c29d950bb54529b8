"""`anabranch event ls`: what happened, newest last, filtered, and followed as it happens."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

import typer
from rich.text import Text

from anabranch import _clock
from anabranch.cli import render
from anabranch.cli.options import OUTPUT, Output, fail, input_errors, seconds
from anabranch.client import get_client
from anabranch.schemas.events import Event

app = typer.Typer(help="Events: runs' state changes, workers, deployments, automations.",
                  no_args_is_help=True)

_FOLLOW_POLL_SECONDS = 0.5
# Event names are padded to this, so resources line up (anabranch.task-run.Completed fits).
_NAME_WIDTH = 30
_FILTER_KEYS = {"event": "event_names", "resource": "resource_ids", "related": "related_ids"}


@app.command("ls")
@input_errors
def ls(
    filter: list[str] = typer.Option(
        [], "--filter", metavar="KEY=PATTERN",
        help="event=anabranch.flow-run.Failed, resource=anabranch.flow-run.<id> or "
        "related=anabranch.flow.<name>; * is a wildcard; repeat a key for any of several.",
    ),
    since: str | None = typer.Option(
        None, "--since", metavar="SECONDS", help="Only events of the last SECONDS."
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="How many to show first."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep showing new events until Ctrl-C."
    ),
    output: Output = OUTPUT,
) -> None:
    """List the latest events, oldest of them first, then (with --follow) new ones."""
    filters: dict[str, Any] = {}
    for item in filter:
        key, sep, pattern = item.partition("=")
        if not sep or key not in _FILTER_KEYS or not pattern:
            fail(f"--filter {item!r}: use KEY=PATTERN with KEY one of "
                 f"{', '.join(_FILTER_KEYS)}.")
        filters.setdefault(_FILTER_KEYS[key], []).append(pattern)
    since_time: datetime | None = None
    if since is not None:
        since_time = _clock.now() - timedelta(seconds=seconds(since, "--since"))
    client = get_client()
    page = client.read_events(**filters, since=since_time, limit=limit, newest_first=True)
    events = list(reversed(page.events))
    for event in events:
        _show(event, output)
    if not events and not follow and output is Output.table:
        render.note("No events match.")
    if not follow:
        return
    after: int | None = page.end
    render.note("Following new events; Ctrl-C stops.")
    try:
        while True:
            time.sleep(_FOLLOW_POLL_SECONDS)
            newer = client.read_events(**filters, after=after, limit=1000)
            for event in newer.events:
                _show(event, output)
            after = newer.next_after
    except KeyboardInterrupt:
        return


def _show(event: Event, output: Output) -> None:
    if output is Output.json:
        print(json.dumps(event.model_dump(mode="json")), flush=True)
        return
    when = event.occurred.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    line = Text(f"{when}  ")
    line.append(event.event.ljust(_NAME_WIDTH), style=_style(event.event))
    line.append(f"  {event.resource.id}")
    if event.resource.name:
        line.append(f" ({event.resource.name})", style="dim")
    message = event.resource.get("anabranch.state-message") or event.payload.get("error")
    if message:
        line.append(f"  {str(message).splitlines()[0][:200]}", style="dim")
    render.show(line)


def _style(name: str) -> str:
    if name.endswith((".Failed", ".Crashed", ".failed", ".offline")):
        return "red"
    if name.endswith((".Completed", ".executed", ".online")):
        return "green"
    return "bold"
