"""Everything the CLI prints, in one place: tables, trees, log lines, JSON and errors.

Commands fetch; this module formats. Text from the store (names, messages) is passed to
rich as plain Text, never as markup, so a "[bold]" in a log line prints as typed.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from anabranch import _clock
from anabranch.schemas import ConcurrencyLimit, FlowRun, LogRecord, State, StateType, TaskRun
from anabranch.schemas.deployments import Deployment, Schedule, Worker, WorkPool, WorkQueue

_STATE_STYLES = {
    StateType.COMPLETED: "green",
    StateType.FAILED: "red",
    StateType.CRASHED: "bold red",
    StateType.CANCELLED: "yellow",
    StateType.CANCELLING: "yellow",
    StateType.PAUSED: "yellow",
    StateType.RUNNING: "blue",
    StateType.PENDING: "dim",
    StateType.SCHEDULED: "dim",
}
_FAILURE_TYPES = frozenset({StateType.FAILED, StateType.CRASHED, StateType.CANCELLED})
_UNBOUNDED_WIDTH = 10_000
_LEVEL_STYLES = {"ERROR": "red", "CRITICAL": "bold red", "WARNING": "yellow", "DEBUG": "dim"}


@dataclass
class RunNode:
    """A run and the runs it started, as ``flow-run inspect`` shows them."""

    run: FlowRun | TaskRun
    children: list[RunNode] = field(default_factory=list)


def _console(*, stderr: bool = False, soft_wrap: bool = True) -> Console:
    # soft_wrap: a line longer than the terminal stays one line for the terminal to wrap
    # (copyable); tables and trees lay themselves out to the width instead.
    console = Console(stderr=stderr, highlight=False, soft_wrap=soft_wrap)
    if not console.is_terminal:
        # Piped or captured: rich would assume 80 columns and crop tables and trees.
        console.width = _UNBOUNDED_WIDTH
    return console


def error(message: str) -> None:
    """One line on stderr; the caller exits 1."""
    _console(stderr=True).print(Text(f"Error: {message}", style="red"))


def warning(message: str) -> None:
    """One line on stderr that something will not go as the user may expect."""
    _console(stderr=True).print(Text(f"Warning: {message}", style="yellow"))


def note(message: str) -> None:
    """A remark for people (e.g. "no flow runs"), on stderr so stdout stays data."""
    _console(stderr=True).print(Text(message, style="dim"))


def show(renderable: Any) -> None:
    """A table (or any rich renderable) on stdout, laid out to the terminal or unbounded."""
    _console().print(renderable)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def run_json(run: FlowRun | TaskRun) -> dict[str, Any]:
    return run.model_dump(mode="json")


def tree_json(node: RunNode) -> dict[str, Any]:
    """The run's fields plus ``kind`` and its nested ``children``."""
    kind = "flow_run" if isinstance(node.run, FlowRun) else "task_run"
    return {
        **run_json(node.run),
        "kind": kind,
        "children": [tree_json(child) for child in node.children],
    }


def flow_runs_table(runs: Sequence[FlowRun]) -> None:
    table = Table(box=None, header_style="bold")
    # Only the id never wraps: in a narrow terminal the other cells wrap instead of vanishing.
    table.add_column("ID", no_wrap=True, min_width=36)
    table.add_column("Flow", overflow="fold")
    table.add_column("Name", overflow="fold")
    table.add_column("State")
    scheduled = any(run.expected_start_time is not None for run in runs)
    if scheduled:
        table.add_column("Scheduled")
    table.add_column("Started")
    table.add_column("Duration", justify="right")
    for run in runs:
        cells: list[str | Text] = [
            str(run.id), Text(run.flow_name), Text(run.name), _state_text(run.state)
        ]
        if scheduled:
            cells.append(_local(run.expected_start_time, "%Y-%m-%d %H:%M:%S"))
        cells += [_local(run.start_time, "%Y-%m-%d %H:%M:%S"), _duration(run)]
        table.add_row(*cells)
    _console(soft_wrap=False).print(table)


def run_tree(node: RunNode) -> None:
    tree = Tree(_label(node.run, time_format="%Y-%m-%d %H:%M:%S"))
    _add_children(tree, node.children)
    _console(soft_wrap=False).print(tree)


def log_lines(
    logs: Iterable[LogRecord],
    flow_names: dict[uuid.UUID, str],
    task_names: dict[uuid.UUID, str],
) -> None:
    """``HH:MM:SS.mmm | LEVEL   | Task run 'name' - message``, in local time."""
    console = _console()
    for record in logs:
        level = logging.getLevelName(record.level)
        if record.task_run_id is None:
            name = flow_names.get(record.flow_run_id) if record.flow_run_id else None
            source = f"Flow run {name or str(record.flow_run_id)!r}"
        else:
            source = f"Task run {task_names.get(record.task_run_id, str(record.task_run_id))!r}"
        line = Text(f"{_local(record.timestamp, '%H:%M:%S.%f')[:-3]} | ")
        line.append(f"{level:<7}", style=_LEVEL_STYLES.get(level, ""))
        line.append(f" | {source} - {record.message}")
        console.print(line)


def settings_table(rows: Iterable[tuple[str, str, str]], database: str) -> None:
    """Rows of (environment variable, effective value, where it came from)."""
    table = Table(box=None, header_style="bold")
    table.add_column("Setting", no_wrap=True)
    table.add_column("Value")
    table.add_column("Source", no_wrap=True)
    for name, value, source in rows:
        table.add_row(name, Text(value), source)
    _console(soft_wrap=False).print(table)
    _console().print(Text(f"\nDatabase: {database}"))


def concurrency_limits_table(limits: Sequence[ConcurrencyLimit]) -> None:
    table = Table(box=None, header_style="bold")
    table.add_column("Name", overflow="fold")
    table.add_column("Limit", justify="right")
    table.add_column("Active slots", justify="right")
    table.add_column("Status")
    table.add_column("Decay", justify="right")
    for limit in limits:
        table.add_row(
            Text(limit.name),
            str(limit.limit),
            _slots(limit.active_slots),
            _status_text(limit),
            _decay(limit.slot_decay_per_second),
        )
    _console(soft_wrap=False).print(table)


def concurrency_limit_detail(limit: ConcurrencyLimit) -> None:
    """The limit's fields, then one row per lease holding its slots, then who waits."""
    console = _console(soft_wrap=False)
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column()
    fields.add_row("Name", Text(limit.name))
    fields.add_row("Limit", f"{limit.limit} slots")
    fields.add_row("Active slots", f"{_slots(limit.active_slots)} of {limit.limit}")
    fields.add_row("Status", _status_text(limit))
    fields.add_row("Slot decay", _decay(limit.slot_decay_per_second))
    fields.add_row("Waiting", str(limit.waiting))
    fields.add_row("Created", _local(limit.created, "%Y-%m-%d %H:%M:%S"))
    fields.add_row("Updated", _local(limit.updated, "%Y-%m-%d %H:%M:%S"))
    console.print(fields)
    console.print()
    if not limit.holders:
        console.print(Text("No holders.", style="dim"))
        return
    holders = Table(box=None, header_style="bold", title="Holders", title_justify="left")
    holders.add_column("Holder", overflow="fold")
    holders.add_column("Run ID", no_wrap=True)
    holders.add_column("Slots", justify="right")
    holders.add_column("Since")
    holders.add_column("Lease expires")
    for holder in limit.holders:
        holders.add_row(
            Text(holder.holder),
            str(holder.run_id) if holder.run_id else "-",
            str(holder.occupy),
            _local(holder.since, "%Y-%m-%d %H:%M:%S"),
            _local(holder.expires_at, "%Y-%m-%d %H:%M:%S"),
        )
    console.print(holders)


def concurrency_limit_json(limit: ConcurrencyLimit, *, live: bool) -> dict[str, Any]:
    """The limit's fields; with ``live`` also its holders and waiting count, which only a
    read of the one limit fills in (a listing would show them empty, wrongly)."""
    return limit.model_dump(mode="json", exclude=None if live else {"holders", "waiting"})


def concurrency_limit_saved(limit: ConcurrencyLimit, *, created: bool) -> None:
    verb = "Created" if created else "Updated"
    line = Text(f"{verb} concurrency limit {limit.name!r}: {limit.limit} slots, ")
    line.append(f"{_slots(limit.active_slots)} in use, ")
    line.append_text(_status_text(limit))
    if limit.slot_decay_per_second:
        line.append(f", slots decay at {_decay(limit.slot_decay_per_second)}")
    line.append(".")
    _console().print(line)


def concurrency_limit_reset(limit: ConcurrencyLimit) -> None:
    _console().print(
        Text(
            f"Reset concurrency limit {limit.name!r}: all {limit.limit} slots are free; "
            "its former holders keep running, counted by nothing."
        )
    )


def concurrency_limit_deleted(name: str) -> None:
    _console().print(
        Text(
            f"Deleted concurrency limit {name!r}; its former holders keep running, and the "
            "name limits nothing any more."
        )
    )


def _status_text(limit: ConcurrencyLimit) -> Text:
    return Text("active", style="green") if limit.active else Text("inactive", style="yellow")


def _slots(count: float) -> str:
    # Whole slots from leases; fractions only while rate_limit() slots drain.
    return f"{round(count, 2):g}"


def _decay(per_second: float) -> str:
    return f"{per_second:g}/s" if per_second else "-"


def _add_children(tree: Tree, children: list[RunNode]) -> None:
    for child in children:
        _add_children(tree.add(_label(child.run, time_format="%H:%M:%S")), child.children)


def _label(run: FlowRun | TaskRun, *, time_format: str) -> Text:
    label = Text(overflow="fold")
    if isinstance(run, FlowRun):
        label.append(run.flow_name, style="bold")
        label.append(f" / {run.name}")
    else:
        label.append(run.name)
    label.append("  ")
    label.append_text(_state_text(run.state))
    label.append(f"  {_local(run.start_time, time_format)}  {_duration(run)}", style="dim")
    if isinstance(run, FlowRun):
        label.append(f"  {run.id}", style="dim")
        where = _where(run)
        if where:
            label.append(f"  {where}", style="cyan")
    state = run.state
    if state is not None and state.type in _FAILURE_TYPES and state.message:
        label.append(f"\n{state.message}", style=_STATE_STYLES[state.type])
    return label


def _where(run: FlowRun) -> str:
    """Where a deployment's run ran: its work pool, worker and process."""
    parts = []
    if run.work_pool_name is not None:
        parts.append(f"pool {run.work_pool_name!r}")
    if run.worker_name is not None:
        parts.append(f"worker {run.worker_name!r}")
    if run.infrastructure_pid is not None:
        parts.append(f"pid {run.infrastructure_pid}")
    return ", ".join(parts)


def _state_text(state: State | None) -> Text:
    if state is None:
        return Text("-", style="dim")
    return Text(state.name, style=_STATE_STYLES.get(state.type, ""))


def _local(moment: datetime | None, time_format: str) -> str:
    return "-" if moment is None else moment.astimezone().strftime(time_format)


def _duration(run: FlowRun | TaskRun) -> str:
    seconds = run.total_run_time
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


# Deployments, work pools, work queues and workers


def deployment_json(deployment: Deployment) -> dict[str, Any]:
    return {**deployment.model_dump(mode="json"), "full_name": deployment.full_name}


def deployments_table(deployments: Sequence[Deployment]) -> None:
    table = Table(box=None, header_style="bold")
    table.add_column("Deployment", overflow="fold")
    table.add_column("Work pool", overflow="fold")
    table.add_column("Queue", overflow="fold")
    table.add_column("Schedule", overflow="fold")
    table.add_column("Status")
    table.add_column("Entrypoint", overflow="fold")
    for deployment in deployments:
        table.add_row(
            Text(deployment.full_name),
            Text(deployment.work_pool_name or "-"),
            Text(deployment.work_queue_name or "-"),
            Text("\n".join(map(_schedule, deployment.schedules)) or "-"),
            _deployment_status(deployment),
            Text(deployment.entrypoint),
        )
    _console(soft_wrap=False).print(table)


def deployment_detail(deployment: Deployment) -> None:
    fields = _fields()
    fields.add_row("Deployment", Text(deployment.full_name))
    fields.add_row("ID", str(deployment.id))
    fields.add_row("Entrypoint", Text(deployment.entrypoint))
    fields.add_row("Description", Text(deployment.description or "-"))
    fields.add_row("Version", Text(deployment.version or "-"))
    fields.add_row("Tags", Text(", ".join(deployment.tags) or "-"))
    fields.add_row("Work pool", Text(deployment.work_pool_name or "- (served by flow.serve)"))
    fields.add_row("Work queue", Text(deployment.work_queue_name or "-"))
    fields.add_row("Concurrency limit", _limit(deployment.concurrency_limit))
    fields.add_row("Parameters", Text(_json_or_dash(deployment.parameters)))
    fields.add_row("Takes", Text(_takes(deployment.parameter_schema)))
    fields.add_row("Job variables", Text(_json_or_dash(deployment.job_variables)))
    fields.add_row("Schedules", Text("\n".join(map(_schedule, deployment.schedules)) or "-"))
    late = deployment.late_run_policy.value
    if deployment.max_lateness_seconds is not None:
        late += f" (max lateness {deployment.max_lateness_seconds:g}s)"
    fields.add_row("Late runs", late)
    fields.add_row("Status", _deployment_status(deployment))
    fields.add_row("Created", _local(deployment.created, "%Y-%m-%d %H:%M:%S"))
    fields.add_row("Updated", _local(deployment.updated, "%Y-%m-%d %H:%M:%S"))
    _console(soft_wrap=False).print(fields)


def deployment_saved(deployment: Deployment, steps: Sequence[str]) -> None:
    where = "no work pool"
    if deployment.work_pool_name is not None:
        where = f"work pool {deployment.work_pool_name!r}, queue {deployment.work_queue_name!r}"
    console = _console()
    console.print(Text(f"Deployed {deployment.full_name!r} ({where}), id {deployment.id}."))
    for step in steps:
        console.print(Text(step))


def deployment_changed(deployment: Deployment, verb: str) -> None:
    _console().print(Text(f"{verb} deployment {deployment.full_name!r}."))


def deployment_deleted(full_name: str) -> None:
    _console().print(
        Text(f"Deleted deployment {full_name!r}; its runs that had not started are cancelled.")
    )


def deployment_run_created(run: FlowRun, deployment: Deployment) -> None:
    console = _console()
    console.print(
        Text(f"Created flow run {run.name!r} of deployment {deployment.full_name!r}: {run.id}")
    )
    if deployment.work_pool_name is not None:
        console.print(
            Text(f"It runs when a worker of work pool {deployment.work_pool_name!r} takes it; "
                 f"follow it with `anabranch flow-run inspect {run.id}`.", style="dim")
        )


def run_state_change(run: FlowRun) -> None:
    """``HH:MM:SS  name  State  message`` as ``deployment run --watch`` sees each state."""
    line = Text(f"{_local(run.state.timestamp if run.state else None, '%H:%M:%S')}  {run.name}  ")
    line.append_text(_state_text(run.state))
    if run.state is not None and run.state.message:
        line.append(f"  {run.state.message}", style="dim")
    _console().print(line)


def backfill_created(deployment: Deployment, runs: Sequence[FlowRun]) -> None:
    console = _console()
    console.print(Text(f"Created {len(runs)} runs of deployment {deployment.full_name!r}:"))
    for run in runs:
        when = _local(run.expected_start_time, "%Y-%m-%d %H:%M:%S %Z")
        console.print(Text(f"  {when}  {run.name}  {run.id}"))


def flow_runs_cancelled(flow_run_id: uuid.UUID, runs: Sequence[FlowRun]) -> None:
    console = _console()
    if not runs:
        console.print(Text(f"Nothing to cancel: flow run {flow_run_id} has no unfinished runs."))
        return
    console.print(Text(f"Cancelling flow run {flow_run_id}:"))
    for run in runs:
        line = Text(f"  {run.id}  {run.flow_name} / {run.name}  ")
        line.append_text(_state_text(run.state))
        console.print(line)


def work_pool_json(
    pool: WorkPool,
    queues: Sequence[WorkQueue] | None = None,
    workers: Sequence[Worker] | None = None,
) -> dict[str, Any]:
    """The pool's fields; with queues and workers for ``inspect``."""
    data = pool.model_dump(mode="json")
    if queues is not None:
        data["queues"] = [work_queue_json(queue) for queue in queues]
    if workers is not None:
        data["workers"] = [worker.model_dump(mode="json") for worker in workers]
    return data


def work_queue_json(queue: WorkQueue) -> dict[str, Any]:
    return queue.model_dump(mode="json")


def work_pools_table(pools: Sequence[WorkPool]) -> None:
    table = Table(box=None, header_style="bold")
    table.add_column("Name", overflow="fold")
    table.add_column("Type")
    table.add_column("Limit", justify="right")
    table.add_column("Active runs", justify="right")
    table.add_column("Online workers", justify="right")
    table.add_column("Status")
    for pool in pools:
        table.add_row(
            Text(pool.name), pool.type, _limit(pool.concurrency_limit), str(pool.active_runs),
            str(pool.online_workers), _paused_text(pool.paused),
        )
    _console(soft_wrap=False).print(table)


def work_pool_detail(
    pool: WorkPool, queues: Sequence[WorkQueue], workers: Sequence[Worker]
) -> None:
    console = _console(soft_wrap=False)
    fields = _fields()
    fields.add_row("Name", Text(pool.name))
    fields.add_row("Type", pool.type)
    fields.add_row("Description", Text(pool.description or "-"))
    fields.add_row("Concurrency limit", _limit(pool.concurrency_limit))
    fields.add_row("Active runs", _of_limit(pool.active_runs, pool.concurrency_limit))
    fields.add_row("Status", _paused_text(pool.paused))
    fields.add_row("Created", _local(pool.created, "%Y-%m-%d %H:%M:%S"))
    console.print(fields)
    console.print()
    work_queues_table(queues, title="Queues", show_pool=False)
    console.print()
    if not workers:
        hint = f"No workers; start one with `anabranch worker start --pool {pool.name}`."
        console.print(Text(hint, style="dim"))
        return
    table = Table(box=None, header_style="bold", title="Workers", title_justify="left")
    table.add_column("Worker", overflow="fold")
    table.add_column("Status")
    table.add_column("Limit", justify="right")
    table.add_column("Last heartbeat")
    for worker in workers:
        status = Text("online", style="green") if worker.online else Text("offline", style="dim")
        table.add_row(
            Text(worker.name), status, _limit(worker.limit),
            _local(worker.last_heartbeat, "%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


def work_queues_table(
    queues: Sequence[WorkQueue], *, title: str | None = None, show_pool: bool = True
) -> None:
    table = Table(box=None, header_style="bold", title=title, title_justify="left")
    table.add_column("Queue", overflow="fold")
    if show_pool:
        table.add_column("Work pool", overflow="fold")
    table.add_column("Priority", justify="right")
    table.add_column("Limit", justify="right")
    table.add_column("Active runs", justify="right")
    table.add_column("Status")
    for queue in queues:
        pool = [Text(queue.work_pool_name)] if show_pool else []
        table.add_row(
            Text(queue.name), *pool, str(queue.priority), _limit(queue.concurrency_limit),
            str(queue.active_runs), _paused_text(queue.paused),
        )
    _console(soft_wrap=False).print(table)


def work_queue_detail(queue: WorkQueue) -> None:
    fields = _fields()
    fields.add_row("Queue", Text(queue.name))
    fields.add_row("Work pool", Text(queue.work_pool_name))
    fields.add_row("Priority", f"{queue.priority} (lower numbers are served first)")
    fields.add_row("Description", Text(queue.description or "-"))
    fields.add_row("Concurrency limit", _limit(queue.concurrency_limit))
    fields.add_row("Active runs", _of_limit(queue.active_runs, queue.concurrency_limit))
    fields.add_row("Status", _paused_text(queue.paused))
    fields.add_row("Created", _local(queue.created, "%Y-%m-%d %H:%M:%S"))
    _console(soft_wrap=False).print(fields)


def work_pool_saved(pool: WorkPool, verb: str) -> None:
    line = Text(f"{verb} work pool {pool.name!r}: limit {_limit(pool.concurrency_limit)}, ")
    line.append(f"{pool.active_runs} active runs, ")
    line.append_text(_paused_text(pool.paused))
    line.append(".")
    _console().print(line)


def work_queue_saved(queue: WorkQueue, verb: str) -> None:
    line = Text(
        f"{verb} work queue {queue.name!r} of work pool {queue.work_pool_name!r}: priority "
        f"{queue.priority}, limit {_limit(queue.concurrency_limit)}, "
    )
    line.append_text(_paused_text(queue.paused))
    line.append(".")
    _console().print(line)


def deleted(what: str) -> None:
    _console().print(Text(f"Deleted {what}."))


def _json_or_dash(data: dict[str, Any]) -> str:
    return json.dumps(data) if data else "-"


def _fields() -> Table:
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column()
    return fields


def _limit(limit: int | None) -> str:
    return "none" if limit is None else str(limit)


def _of_limit(active: int, limit: int | None) -> str:
    return str(active) if limit is None else f"{active} of {limit}"


def _deployment_status(deployment: Deployment) -> Text:
    """Paused or active; for one served by ``flow.serve()``, whether a process serves it."""
    status = _paused_text(deployment.paused)
    if deployment.work_pool_name is None:
        if deployment.served_offline(_clock.now()):
            status.append(", no serve process", style="yellow")
        else:
            status.append(", served")
    return status


def served_offline_warning(deployment: Deployment) -> None:
    """Tell that nothing serves the deployment a run was just made for."""
    seen = deployment.last_polled
    since = "never" if seen is None else f"last seen {_local(seen, '%Y-%m-%d %H:%M:%S')}"
    warning(
        f"No process is serving {deployment.full_name!r} ({since}): the run waits until "
        f"its `flow.serve()` runs again."
    )


def _paused_text(paused: bool) -> Text:
    return Text("paused", style="yellow") if paused else Text("active", style="green")


def _schedule(schedule: Schedule) -> str:
    if schedule.cron is not None:
        text = f"cron {schedule.cron!r} ({schedule.timezone})"
    else:
        text = f"every {schedule.interval:g}s"
        if schedule.anchor_date is not None:
            text += f" from {schedule.anchor_date.isoformat()}"
    return text if schedule.active else f"{text}, inactive"


def _takes(schema: dict[str, Any] | None) -> str:
    """``a: integer (required), b: string = 'x'`` from a parameter schema."""
    if not schema:
        return "anything (no parameter schema)"
    required = set(schema.get("required", ()))
    described = []
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type") or ("object" if "$ref" in prop else "any")
        text = f"{name}: {kind}"
        if name in required:
            text += " (required)"
        elif "default" in prop:
            text += f" = {json.dumps(prop['default'])}"
        described.append(text)
    if schema.get("additionalProperties", True) is not False:
        described.append("**others")
    return ", ".join(described) or "no parameters"
