"""A store with a small family of runs, and the real `anabranch` console script to read it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from anabranch.client.embedded import EmbeddedClient
from anabranch.schemas import FlowRun, LogRecord, RecordBatch, State, StateType, TaskRun
from server_harness import ANABRANCH

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _finished(run, type_: StateType, start: float, end: float, message: str | None = None):
    run.start_time, run.end_time = _at(start), _at(end)
    run.state = State(type=type_, name=type_.value.title(), message=message, timestamp=_at(end))
    return run


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-home")


@pytest.fixture(scope="module")
def runs(cli_home: Path) -> dict[str, FlowRun | TaskRun]:
    """etl/brave-otter (failed) ran extract, transform (failed) and the subflow load/calm-heron,
    whose task publish called the subflow notify/quiet-lark; report/swift-fox ran earlier and
    etl/lazy-newt is retrying."""
    etl = _finished(
        FlowRun(name="brave-otter", flow_name="etl", created=_at(0)),
        StateType.FAILED, 0, 5, "1 of 3 task runs failed",
    )
    extract = _finished(
        TaskRun(name="extract-0", task_key="etl.extract", flow_run_id=etl.id, created=_at(0.1)),
        StateType.COMPLETED, 0.1, 1,
    )
    transform = _finished(
        TaskRun(name="transform-0", task_key="etl.transform", flow_run_id=etl.id, created=_at(1)),
        StateType.FAILED, 1, 1.5, "ValueError: bad row 7",
    )
    load = _finished(
        FlowRun(name="calm-heron", flow_name="load", created=_at(2), parent_flow_run_id=etl.id),
        StateType.COMPLETED, 2, 4,
    )
    publish = _finished(
        TaskRun(name="publish-0", task_key="load.publish", flow_run_id=load.id, created=_at(2.5)),
        StateType.COMPLETED, 2.5, 3.5,
    )
    notify = _finished(
        FlowRun(
            name="quiet-lark",
            flow_name="notify",
            created=_at(3),
            parent_flow_run_id=load.id,
            parent_task_run_id=publish.id,
        ),
        StateType.COMPLETED, 3, 3.2,
    )
    report = _finished(
        FlowRun(name="swift-fox", flow_name="report", created=_at(-60)),
        StateType.COMPLETED, -60, -59,
    )
    retrying = FlowRun(name="lazy-newt", flow_name="etl", created=_at(10), start_time=_at(10))
    retrying.state = State(type=StateType.RUNNING, name="Retrying", timestamp=_at(11))
    logs = [
        LogRecord(flow_run_id=etl.id, name="flow", level=20, message="Beginning", timestamp=_at(0)),
        LogRecord(
            flow_run_id=etl.id, task_run_id=transform.id, name="task", level=40,
            message="bad row 7 [bold]not markup[/bold]", timestamp=_at(1.4),
        ),
        LogRecord(
            flow_run_id=etl.id, task_run_id=extract.id, name="task", level=20,
            message="extracted 3 rows", timestamp=_at(0.5),
        ),
        LogRecord(flow_run_id=load.id, name="flow", level=20, message="loading", timestamp=_at(2)),
    ]
    EmbeddedClient(f"sqlite:///{cli_home / 'anabranch.db'}").write_batch(
        RecordBatch(
            flow_runs=[etl, load, notify, report, retrying],
            task_runs=[extract, transform, publish],
            logs=logs,
        )
    )
    return {
        "etl": etl, "extract": extract, "transform": transform, "load": load,
        "publish": publish, "notify": notify, "report": report, "retrying": retrying,
    }


@pytest.fixture
def anabranch(cli_home: Path, runs: dict) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed `anabranch` script against the seeded store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANABRANCH_")}
    env["ANABRANCH_HOME"] = str(cli_home)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ANABRANCH, *args], env=env, capture_output=True, text=True, timeout=60
        )

    return run
