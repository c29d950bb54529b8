"""`anabranch automation ...`: be told when runs fail, and the automations that do it.

The common case is one line::

    anabranch automation create nightly-failed --on-state Failed --on-state Crashed \\
        --flow nightly --notify "slack://TokenA/TokenB/TokenC"

Anything an ``Automation`` object can say comes from a YAML or JSON file of the same
structure (``--from-file``). Secrets in URLs and headers are shown masked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table

from anabranch.cli import render
from anabranch.cli.options import OUTPUT, Output, fail, input_errors
from anabranch.client import get_client
from anabranch.schemas.automations import (
    AutomationFiring,
    AutomationSpec,
    CallWebhook,
    EventTrigger,
    SendNotification,
    StoredAutomation,
)
from anabranch.schemas.events import RESOURCE_NAME, RESOURCE_ROLE
from anabranch.schemas.states import StateType
from anabranch.settings import get_settings

app = typer.Typer(
    help="Automations: notify, call webhooks or act on runs when events happen.",
    no_args_is_help=True,
)

_NAME = typer.Argument(..., metavar="NAME", help="The automation's name.")
# A flow run's state names an event may carry: the types' own names, plus Late (a
# Scheduled run past its time), Retrying and AwaitingRetry.
_STATE_NAMES = {t.value.title(): t.value.title() for t in StateType} | {
    "Late": "Late", "Retrying": "Retrying", "Awaitingretry": "AwaitingRetry",
}


@app.command()
@input_errors
def create(
    name: str | None = typer.Argument(None, metavar="[NAME]", help="The automation's name."),
    on_state: list[str] = typer.Option(
        [], "--on-state", metavar="STATE",
        help="Fire when a flow run enters this state (Failed, Crashed, Late, Completed, "
        "...); repeat for several.",
    ),
    flow: str | None = typer.Option(None, "--flow", metavar="FLOW", help="Only runs of this flow."),
    deployment: str | None = typer.Option(
        None, "--deployment", metavar="FLOW/DEPLOYMENT", help="Only runs of this deployment."
    ),
    tag: list[str] = typer.Option(
        [], "--tag", metavar="TAG", help="Only runs with this tag; repeat for several (all)."
    ),
    notify: list[str] = typer.Option(
        [], "--notify", metavar="URL",
        help="Send a notification to this Apprise URL (slack://..., mailto://..., "
        "json://host/path, ...); repeat for several.",
    ),
    webhook: list[str] = typer.Option(
        [], "--webhook", metavar="URL", help="POST the event as JSON to this URL."
    ),
    description: str = typer.Option("", "--description", "-d"),
    from_file: Path | None = typer.Option(
        None, "--from-file", metavar="FILE",
        help="Create the automation(s) in this YAML or JSON file (the structure of "
        "anabranch.automations.Automation: name, trigger, actions).",
    ),
) -> None:
    """Create an automation from options (the common case) or from a file."""
    if from_file is not None:
        if name or on_state or notify or webhook or flow or deployment or tag:
            fail("--from-file takes everything from the file; give no NAME or other options.")
        specs = _from_file(from_file)
    else:
        specs = [_from_options(name, on_state, flow, deployment, tag, notify, webhook,
                               description)]
    client = get_client()
    for spec in specs:
        stored = client.create_automation(spec)
        render.note(f"Created automation {stored.name!r}: {_trigger_text(stored)}.")
    if not get_settings().api_url:
        render.note(
            "Automations fire while `anabranch server start` runs on this database; "
            "start one (and set ANABRANCH_API_URL) if none is running."
        )


@app.command("ls")
@input_errors
def ls(output: Output = OUTPUT) -> None:
    """List automations: trigger, actions (secrets masked) and their last firing."""
    client = get_client()
    automations = client.read_automations()
    if output is Output.json:
        render.print_json([a.model_dump(mode="json") for a in automations])
        return
    if not automations:
        render.note("No automations; create one with `anabranch automation create NAME "
                    "--on-state Failed --notify URL`.")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "ENABLED", "TRIGGER", "ACTIONS", "LAST FIRED"):
        table.add_column(column)
    for automation in automations:
        last = client.read_automation_firings(automation_name=automation.name, limit=1)
        table.add_row(
            automation.name,
            "yes" if automation.enabled else "paused",
            _trigger_text(automation),
            "; ".join(_action_text(a) for a in automation.actions),
            _firing_text(last[0]) if last else "never",
        )
    render.show(table)


@app.command()
@input_errors
def inspect(name: str = _NAME, output: Output = OUTPUT) -> None:
    """Show an automation (secrets masked) and its latest firings with their outcomes."""
    client = get_client()
    automation = client.read_automation(name)
    firings = client.read_automation_firings(automation_name=name, limit=20)
    if output is Output.json:
        render.print_json(
            {**automation.model_dump(mode="json"),
             "firings": [f.model_dump(mode="json") for f in firings]}
        )
        return
    print(yaml.safe_dump(_declaration(automation), sort_keys=False).rstrip())
    print("firings:" if firings else "firings: none yet")
    for firing in firings:
        print(f"  - {_firing_text(firing)}: {firing.reason}")
        for outcome in firing.actions:
            error = f" ({outcome.error})" if outcome.error else ""
            print(f"      {outcome.type}: {outcome.status} after {outcome.attempts} "
                  f"attempt(s){error}")


@app.command()
@input_errors
def pause(name: str = _NAME) -> None:
    """Stop an automation from firing (its windows are forgotten)."""
    get_client().set_automation_enabled(name, False)
    render.note(f"Paused automation {name!r}.")


@app.command()
@input_errors
def resume(name: str = _NAME) -> None:
    """Let a paused automation fire again."""
    get_client().set_automation_enabled(name, True)
    render.note(f"Resumed automation {name!r}.")


@app.command()
@input_errors
def delete(name: str = _NAME) -> None:
    """Delete an automation and its actions not yet carried out."""
    get_client().delete_automation(name)
    render.deleted(f"automation {name!r}")


def _from_options(
    name: str | None,
    on_state: list[str],
    flow: str | None,
    deployment: str | None,
    tags: list[str],
    notify: list[str],
    webhook: list[str],
    description: str,
) -> AutomationSpec:
    if not name:
        fail("Give the automation a NAME (or --from-file FILE).")
    if not on_state:
        fail("Say when it fires: --on-state Failed (repeat for several states).")
    if not notify and not webhook:
        fail("Say what it does: --notify URL (an Apprise URL) or --webhook URL.")
    states = []
    for state in on_state:
        known = _STATE_NAMES.get(state.strip().title())
        if known is None:
            fail(f"--on-state {state!r} is not a state; use one of "
                 f"{', '.join(sorted(_STATE_NAMES.values()))}.")
        states.append(known)
    related: list[dict[str, str | list[str]]] = []
    if flow:
        related.append({"anabranch.resource.role": "flow", "anabranch.resource.name": flow})
    if deployment:
        related.append(
            {"anabranch.resource.role": "deployment", "anabranch.resource.name": deployment}
        )
    related += [{"anabranch.resource.role": "tag", "anabranch.resource.name": t} for t in tags]
    return AutomationSpec(
        name=name,
        description=description,
        trigger=EventTrigger(
            expect={f"anabranch.flow-run.{state}" for state in states},
            match_related=related,
        ),
        actions=[
            *(SendNotification(url=url) for url in notify),
            *(CallWebhook(url=url) for url in webhook),
        ],
    )


def _from_file(path: Path) -> list[AutomationSpec]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"Can not read {path}: {exc.strerror or exc}.")
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        fail(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}")
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(item, dict) for item in items):
        fail(f"{path} must hold an automation (a mapping with name, trigger and actions) "
             "or a list of them.")
    return [AutomationSpec.model_validate(item) for item in items]


def _declaration(automation: StoredAutomation) -> dict[str, Any]:
    """What was declared, without the defaults (and ``within`` in seconds): the structure
    ``--from-file`` takes."""
    trigger = automation.trigger.model_dump(mode="json", exclude_defaults=True)
    if "within" in trigger:
        trigger["within"] = automation.trigger.within.total_seconds()
    for names in ("after", "expect", "for_each"):  # sets: shown in a stable order
        if names in trigger:
            trigger[names] = sorted(trigger[names])
    declared: dict[str, Any] = {"name": automation.name, "enabled": automation.enabled}
    if automation.description:
        declared["description"] = automation.description
    declared["trigger"] = trigger
    declared["actions"] = [
        {"type": action.type, **action.model_dump(mode="json", exclude_defaults=True)}
        for action in automation.actions
    ]
    return declared


def _trigger_text(automation: StoredAutomation | AutomationSpec) -> str:
    trigger = automation.trigger
    expect = ", ".join(sorted(trigger.expect)) or "any event"
    text = f"{trigger.posture.lower()} on {expect}"
    if trigger.after:
        text += f" after {', '.join(sorted(trigger.after))}"
    if trigger.threshold > 1 or trigger.posture == "Proactive":
        text += f" (x{trigger.threshold} within {trigger.within.total_seconds():g} s)"
    for spec in trigger.related_specs:
        if set(spec) == {RESOURCE_ROLE, RESOURCE_NAME}:
            text += f" for {spec[RESOURCE_ROLE]} {spec[RESOURCE_NAME]}"
        elif spec:
            text += " for " + " ".join(f"{k.split('.')[-1]}={v}" for k, v in spec.items())
    return text


def _action_text(action: Any) -> str:
    url = getattr(action, "url", None)
    return f"{action.type} {url}" if url else str(action.type)


def _firing_text(firing: AutomationFiring) -> str:
    statuses = ", ".join(o.status for o in firing.actions) or "no actions"
    return f"{firing.fired.astimezone().strftime('%Y-%m-%d %H:%M:%S')} ({statuses})"
