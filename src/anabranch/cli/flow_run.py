"""`anabranch flow-run ...`: list, inspect and read the logs of flow runs."""

from __future__ import annotations

import enum
import uuid
from typing import Any

import typer

from anabranch.cli import render
from anabranch.client import AnabranchClient, get_client
from anabranch.schemas import FlowRun, StateType

app = typer.Typer(help="List and inspect flow runs and read their logs.", no_args_is_help=True)


class Output(str, enum.Enum):
    table = "table"
    json = "json"


_OUTPUT = typer.Option(Output.table, "--output", "-o", help="table for people, json for scripts.")


@app.command("ls")
def ls(
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many runs, newest first."),
    state: str | None = typer.Option(
        None, "--state", "-s", help="A state type (failed, running, ...) or state name."
    ),
    output: Output = _OUTPUT,
) -> None:
    """List flow runs, newest first."""
    runs = get_client().read_flow_runs(limit=limit, **_state_filter(state))
    if output is Output.json:
        render.print_json([render.run_json(run) for run in runs])
    elif runs:
        render.flow_runs_table(runs)
    else:
        render.note("No flow runs" + (f" in state {state!r}." if state else "."))


@app.command()
def inspect(flow_run_id: str = typer.Argument(..., metavar="ID"), output: Output = _OUTPUT) -> None:
    """Show a flow run with its task runs and subflow runs, nested."""
    client = get_client()
    node = _gather(client, client.read_flow_run(_parse_id(flow_run_id)))
    if output is Output.json:
        render.print_json(render.tree_json(node))
    else:
        render.run_tree(node)


@app.command()
def logs(flow_run_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Print a flow run's logs, including its task runs', oldest first."""
    client = get_client()
    flow_run = client.read_flow_run(_parse_id(flow_run_id))
    records = client.read_logs(flow_run_id=flow_run.id)
    if not records:
        render.note(f"Flow run {flow_run.id} has no logs.")
        return
    task_names = {run.id: run.name for run in client.read_task_runs(flow_run_id=flow_run.id)}
    render.log_lines(records, flow_run, task_names)


def _parse_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        render.error(
            f"{value!r} is not a flow run id: ids are UUIDs like "
            "3f2b6a1e-8c4d-4e7f-9a0b-1c2d3e4f5a6b; `anabranch flow-run ls` lists them."
        )
        raise typer.Exit(1) from None


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
