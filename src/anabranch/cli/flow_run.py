"""`anabranch flow-run ...`: list, inspect and read the logs of flow runs."""

from __future__ import annotations

import enum
import logging
import time
import uuid
from datetime import datetime
from typing import Any

import typer

from anabranch.cli import render
from anabranch.cli.options import deployment_name, whole_number
from anabranch.client import AnabranchClient, get_client, upkeep
from anabranch.schemas import FlowRun, LogRecord, StateType

# The shortest id start looked up, and how many candidates an ambiguous one names.
_MIN_PREFIX = 4
_SHOWN = 5
# Following logs: how often to look, and how many lines already shown to read again (lines
# from other processes can arrive a little out of order).
_FOLLOW_POLL_SECONDS = 0.5
_REREAD_LINES = 500
_RUN = typer.Argument(
    ..., metavar="ID", help="The run's id, the start of it (at least 4 digits), or its name."
)

app = typer.Typer(help="List and inspect flow runs and read their logs.", no_args_is_help=True)


class Output(str, enum.Enum):
    table = "table"
    json = "json"


_OUTPUT = typer.Option(Output.table, "--output", "-o", help="table for people, json for scripts.")


@app.command("ls")
def ls(
    limit: str = typer.Option(
        "20", "--limit", "-n", metavar="N", help="How many runs, newest first."
    ),
    state: str | None = typer.Option(
        None, "--state", "-s", help="A state type (failed, running, ...) or state name."
    ),
    tag: list[str] | None = typer.Option(
        None, "--tag", "-t", metavar="TAG",
        help="Only runs with this tag; repeat it for runs with all of them.",
    ),
    since: str | None = typer.Option(
        None, "--since", metavar="TIME", help="Only runs that started at or after TIME: "
        "ISO 8601 (2025-03-01, 2025-03-01T12:00, 2025-03-01T12:00Z); local time if no zone."
    ),
    until: str | None = typer.Option(
        None, "--until", metavar="TIME", help="Only runs that started at or before TIME "
        "(as --since; a date alone is its midnight)."
    ),
    flow: str | None = typer.Option(None, "--flow", metavar="FLOW", help="Only this flow's runs."),
    deployment: str | None = typer.Option(
        None, "--deployment", metavar="FLOW/DEPLOYMENT", help="Only this deployment's runs."
    ),
    output: Output = _OUTPUT,
) -> None:
    """List flow runs, newest first."""
    count = whole_number(limit, "--limit", minimum=1)
    client = _up_to_date_store()
    deployment_id = None
    if deployment is not None:
        deployment_id = client.read_deployment_by_name(deployment_name(deployment)).id
    runs = client.read_flow_runs(
        limit=count,
        flow_name=flow,
        deployment_id=deployment_id,
        tags=tag,
        started_after=_parse_time(since, "--since"),
        started_before=_parse_time(until, "--until"),
        **_state_filter(state),
    )
    if output is Output.json:
        render.print_json([render.run_json(run) for run in runs])
    elif runs:
        render.flow_runs_table(runs)
    elif tag or since or until or flow or deployment:
        render.note("No flow runs match these filters.")
    else:
        render.note("No flow runs" + (f" in state {state!r}." if state else "."))


@app.command()
def inspect(flow_run_id: str = _RUN, output: Output = _OUTPUT) -> None:
    """Show a flow run with its task runs and subflow runs, nested."""
    client = _up_to_date_store()
    node = _gather(client, client.read_flow_run(_find_run(client, flow_run_id)))
    if output is Output.json:
        render.print_json(render.tree_json(node))
    else:
        render.run_tree(node)


@app.command()
def logs(
    flow_run_id: str = _RUN,
    with_subflows: bool = typer.Option(
        False, "--with-subflows", help="Also the logs of its subflow runs, at any depth."
    ),
    level: str = typer.Option(
        "DEBUG", "--level", metavar="LEVEL",
        help="Only lines at this level or above (DEBUG, INFO, WARNING, ERROR, CRITICAL).",
    ),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new lines until the run ends (or Ctrl-C)."
    ),
) -> None:
    """Print a flow run's logs, including its task runs', oldest first."""
    min_level = _level(level)
    client = _up_to_date_store()
    flow_run = client.read_flow_run(_find_run(client, flow_run_id))
    shown: set[uuid.UUID] = set()
    names = _RunNames(client)
    while True:
        ended = flow_run.state is not None and flow_run.state.is_final()
        records = client.read_logs(
            flow_run_id=flow_run.id, include_subflows=with_subflows, min_level=min_level,
            offset=max(0, len(shown) - _REREAD_LINES),
        )
        new = [record for record in records if record.id not in shown]
        if new:
            render.log_lines(new, names.flow_runs(new), names.task_runs(new))
            shown.update(record.id for record in new)
        if not follow or ended:
            break
        try:
            time.sleep(_FOLLOW_POLL_SECONDS)
        except KeyboardInterrupt:
            return
        flow_run = client.read_flow_run(flow_run.id)
    if not shown:
        render.note(f"Flow run {flow_run.id} has no logs" + (
            "." if min_level <= logging.DEBUG else f" at {level.upper()} or above."
        ))


class _RunNames:
    """The names of the runs log lines come from, read once each."""

    def __init__(self, client: AnabranchClient) -> None:
        self.client = client
        self.flows: dict[uuid.UUID, str] = {}
        self.tasks: dict[uuid.UUID, str] = {}

    def flow_runs(self, records: list[LogRecord]) -> dict[uuid.UUID, str]:
        for flow_run_id in {r.flow_run_id for r in records if r.flow_run_id} - set(self.flows):
            self.flows[flow_run_id] = self.client.read_flow_run(flow_run_id).name
            for task_run in self.client.read_task_runs(flow_run_id=flow_run_id):
                self.tasks[task_run.id] = task_run.name
        return self.flows

    def task_runs(self, records: list[LogRecord]) -> dict[uuid.UUID, str]:
        missing = {r.task_run_id for r in records if r.task_run_id} - set(self.tasks)
        for task_run_id in missing:
            self.tasks[task_run_id] = self.client.read_task_run(task_run_id).name
        return self.tasks


def _level(name: str) -> int:
    number = logging.getLevelName(name.strip().upper())
    if not isinstance(number, int):
        render.error(f"--level {name!r} is not a level; use DEBUG, INFO, WARNING, ERROR or "
                     "CRITICAL.")
        raise typer.Exit(1)
    return number


def _up_to_date_store() -> AnabranchClient:
    """The store, with what this machine's processes left in the spool delivered and (on
    the embedded store, which no server looks after) dead runs crashed, so what is shown
    is what happened."""
    upkeep.deliver_spool()
    upkeep.crash_dead_runs()
    return get_client()


def _find_run(client: AnabranchClient, value: str) -> uuid.UUID:
    """The flow run ``value`` names: its id, the start of its id (as `flow-run ls` shows
    it, at least 4 digits), or its name; one line naming the candidates when several fit."""
    try:
        return uuid.UUID(value)
    except ValueError:
        pass
    found: list[FlowRun] = []
    digits = value.replace("-", "")
    if len(digits) >= _MIN_PREFIX and all(c in "0123456789abcdefABCDEF" for c in digits):
        found = client.read_flow_runs(id_prefix=value, limit=_SHOWN + 1)
    if not found:
        named = client.read_flow_runs(name_contains=value, limit=1000)
        found = [run for run in named if run.name == value]
    if len(found) == 1:
        return found[0].id
    if not found:
        render.error(
            f"No flow run has the id, id start or name {value!r}; `anabranch flow-run ls` "
            "lists them."
        )
    else:
        shown = ", ".join(f"{run.id} ({run.name})" for run in found[:_SHOWN])
        more = " and more" if len(found) > _SHOWN else ""
        render.error(f"{value!r} fits several flow runs: {shown}{more}; give more of the id.")
    raise typer.Exit(1)


def _parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or time from the command line; without a time zone, local time."""
    if value is None:
        return None
    text = value.strip()
    if text[-1:] in ("Z", "z"):  # fromisoformat takes "Z" only from Python 3.11 on
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        render.error(
            f"{option} {value!r} is not a date or time: use ISO 8601, like 2025-03-01, "
            "2025-03-01T12:00 (local time) or 2025-03-01T12:00:00+02:00."
        )
        raise typer.Exit(1) from None
    return when if when.tzinfo is not None else when.astimezone()


def _state_filter(state: str | None) -> dict[str, Any]:
    # A state type if the value names one (any case), otherwise a state name like "Retrying".
    if state is None:
        return {}
    if state.upper() in StateType.__members__:
        return {"state_types": [StateType[state.upper()]]}
    return {"state_names": [state]}


def _gather(client: AnabranchClient, flow_run: FlowRun) -> render.RunNode:
    """The run with its task runs and subflow runs, each subflow under the task run that
    called it when that task run belongs to this flow run; children in start order."""
    task_nodes = {
        task_run.id: render.RunNode(task_run)
        for task_run in client.read_task_runs(flow_run_id=flow_run.id)
    }
    direct: list[render.RunNode] = []
    for subflow in client.read_flow_runs(parent_flow_run_id=flow_run.id):
        child = _gather(client, subflow)
        caller = task_nodes.get(subflow.parent_task_run_id) if subflow.parent_task_run_id else None
        (caller.children if caller else direct).append(child)
    for node in task_nodes.values():
        node.children.sort(key=_start_order)
    children = sorted([*task_nodes.values(), *direct], key=_start_order)
    return render.RunNode(flow_run, children)


def _start_order(node: render.RunNode) -> Any:
    return node.run.start_time or node.run.created


@app.command()
def cancel(
    flow_run_id: str = _RUN,
    descendants: bool = typer.Option(
        False, "--descendants",
        help="Also when the run has ended: cancel the runs it started that still go on.",
    ),
) -> None:
    """Cancel a flow run and its unfinished subflow and deployment runs.

    Runs that never started are Cancelled at once, running ones Cancelling until their
    worker stops them."""
    client = get_client()
    run_id = _find_run(client, flow_run_id)
    cancelled = client.cancel_flow_run(run_id, descendants=descendants)
    render.flow_runs_cancelled(run_id, [client.read_flow_run(i) for i in cancelled])
