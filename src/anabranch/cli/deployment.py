"""`anabranch deployment ...`: list, inspect, run, pause, resume, backfill and delete
deployments, each addressed as FLOW/DEPLOYMENT."""

from __future__ import annotations

import uuid

import typer

from anabranch import _clock
from anabranch.cli import render
from anabranch.cli.options import (
    OUTPUT,
    Output,
    deployment_name,
    fail,
    input_errors,
    moment,
    parameters,
    seconds,
)
from anabranch.client import AnabranchClient, get_client
from anabranch.schemas import FlowRun, StateType
from anabranch.schemas.deployments import DeploymentRunRequest

app = typer.Typer(
    help="List, inspect, run and delete deployments (FLOW/DEPLOYMENT).", no_args_is_help=True
)

_NAME = typer.Argument(..., metavar="FLOW/DEPLOYMENT", help="e.g. etl/daily.")
# While watching, look at the run at least this often, so each state shows as it comes.
_WATCH_SLICE_SECONDS = 1.0


@app.command("ls")
@input_errors
def ls(
    flow_name: str | None = typer.Option(None, "--flow", help="Only this flow's deployments."),
    pool: str | None = typer.Option(None, "--pool", help="Only deployments of this work pool."),
    output: Output = OUTPUT,
) -> None:
    """List deployments by flow and name."""
    deployments = get_client().read_deployments(flow_name=flow_name, work_pool_name=pool)
    if output is Output.json:
        render.print_json([render.deployment_json(d) for d in deployments])
    elif deployments:
        render.deployments_table(deployments)
    else:
        render.note(
            "No deployments; create one with "
            "`anabranch deploy path/to/file.py:flow_function --name NAME --pool POOL`."
        )


@app.command()
@input_errors
def inspect(name: str = _NAME, output: Output = OUTPUT) -> None:
    """Show a deployment: entrypoint, parameters, work pool, job variables, schedules."""
    deployment = get_client().read_deployment_by_name(deployment_name(name))
    if output is Output.json:
        render.print_json(render.deployment_json(deployment))
    else:
        render.deployment_detail(deployment)


@app.command()
@input_errors
def run(
    name: str = _NAME,
    param: list[str] = typer.Option(
        [], "--param", metavar="KEY=VALUE",
        help="A parameter, repeatable, over the deployment's defaults; VALUE is JSON if it "
        "parses, else a string.",
    ),
    watch: bool = typer.Option(
        False, "--watch", help="Wait for the run to end, printing its states; exit 1 unless "
        "it ends Completed."
    ),
    timeout: str | None = typer.Option(
        None, "--timeout", metavar="SECONDS",
        help="With --watch (which it implies): give up after SECONDS, exit 1; the run goes on.",
    ),
) -> None:
    """Create a run of a deployment now; print its id, and with --watch follow it."""
    limit = None if timeout is None else seconds(timeout, "--timeout")
    client = get_client()
    deployment = client.read_deployment_by_name(deployment_name(name))
    flow_run = client.create_flow_run_from_deployment(
        deployment.id, DeploymentRunRequest(parameters=parameters(param))
    )
    render.deployment_run_created(flow_run, deployment)
    if deployment.served_offline(_clock.now()):
        render.served_offline_warning(deployment)
    if watch or limit is not None:
        _watch(client, flow_run, limit)


@app.command()
@input_errors
def delete(name: str = _NAME) -> None:
    """Delete a deployment; its runs that have not started are cancelled."""
    client = get_client()
    deployment = client.read_deployment_by_name(deployment_name(name))
    client.delete_deployment(deployment.id)
    render.deployment_deleted(deployment.full_name)


@app.command()
@input_errors
def pause(name: str = _NAME) -> None:
    """Pause a deployment's schedules: they make no new runs (runs asked for still run)."""
    _set_paused(name, True)


@app.command()
@input_errors
def resume(name: str = _NAME) -> None:
    """Resume a paused deployment's schedules."""
    _set_paused(name, False)


@app.command()
@input_errors
def backfill(
    name: str = _NAME,
    start: str = typer.Option(
        ..., "--start", metavar="ISO", help="From this date or time (local time without an offset)."
    ),
    end: str = typer.Option(..., "--end", metavar="ISO", help="Up to this date or time."),
) -> None:
    """Create the runs the deployment's schedules would have made from --start to --end.

    Each has its own scheduled time; workers take them under the pool's limits."""
    first, last = moment(start, "--start"), moment(end, "--end")
    if last < first:
        fail(f"--end ({end}) is before --start ({start}).")
    client = get_client()
    deployment = client.read_deployment_by_name(deployment_name(name))
    runs = client.backfill_deployment(deployment.id, start=first, end=last)
    render.backfill_created(deployment, runs)


def _set_paused(name: str, paused: bool) -> None:
    client = get_client()
    deployment = client.read_deployment_by_name(deployment_name(name))
    waiting_before = _scheduled_runs(client, deployment.id)
    changed = client.set_deployment_paused(deployment.id, paused)
    render.deployment_changed(changed, "Paused" if paused else "Resumed")
    if paused:
        removed = waiting_before - _scheduled_runs(client, deployment.id)
        render.note(
            f"Its schedules make no new runs; {removed} upcoming scheduled run(s) they had "
            "made were removed (runs asked for still run). `anabranch deployment resume "
            f"{changed.full_name}` lets the schedules make them again."
            if removed else
            "Its schedules make no new runs (runs asked for still run)."
        )


def _scheduled_runs(client: AnabranchClient, deployment_id: uuid.UUID) -> int:
    return len(
        client.read_flow_runs(deployment_id=deployment_id, state_types=[StateType.SCHEDULED])
    )


def _watch(client: AnabranchClient, flow_run: FlowRun, timeout: float | None) -> None:
    """Print each state the run is seen in until it ends; exit 1 unless it Completed."""
    deadline = None if timeout is None else _clock.monotonic() + timeout
    seen: tuple[object, ...] | None = None
    while True:
        state = flow_run.state
        if state is not None and (state.name, state.timestamp) != seen:
            seen = (state.name, state.timestamp)
            render.run_state_change(flow_run)
        if state is not None and state.is_final():
            break
        remaining = _WATCH_SLICE_SECONDS
        if deadline is not None:
            remaining = min(remaining, deadline - _clock.monotonic())
            if remaining <= 0:
                fail(
                    f"Flow run {flow_run.name!r} ({flow_run.id}) is still "
                    f"{state.name if state else 'not started'} after {timeout:g}s; it goes on "
                    f"(`anabranch flow-run inspect {flow_run.id}`)."
                )
        flow_run = client.wait_for_flow_run(flow_run.id, timeout=remaining)
    assert state is not None  # Invariant: the loop only ends on a final state
    if state.type is not StateType.COMPLETED:
        message = f": {state.message}" if state.message else ""
        fail(f"Flow run {flow_run.name!r} ({flow_run.id}) ended {state.name}{message}")
