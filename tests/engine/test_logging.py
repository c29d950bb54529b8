"""Run logs: get_run_logger, print capture, where lines are stored, how the console shows them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from anabranch import flow, get_run_logger, task
from anabranch.client.recorder import flush_all
from anabranch.exceptions import MissingContextError


def messages(lines) -> list[str]:
    return [line.message for line in lines]


def test_get_run_logger_stores_flow_lines_with_the_flow_run_and_task_lines_with_the_task_run(
    client,
):
    @task
    def step() -> None:
        get_run_logger().info("hello from the task")

    @flow
    def pipeline() -> None:
        get_run_logger().warning("hello from the flow")
        step()

    pipeline()

    (run,) = client.read_flow_runs()
    (task_run,) = client.read_task_runs(flow_run_id=run.id)
    lines = {line.message: line for line in client.read_logs(flow_run_id=run.id)}
    flow_line, task_line = lines["hello from the flow"], lines["hello from the task"]
    assert (flow_line.flow_run_id, flow_line.task_run_id) == (run.id, None)
    assert flow_line.level == logging.WARNING
    assert (task_line.flow_run_id, task_line.task_run_id) == (run.id, task_run.id)
    assert task_line.level == logging.INFO
    assert messages(client.read_logs(task_run_id=task_run.id)) == ["hello from the task"]


def test_get_run_logger_in_async_flows_and_tasks_stores_lines_with_their_runs(client):
    @task
    async def step() -> None:
        get_run_logger().info("async task line")

    @flow
    async def pipeline() -> None:
        get_run_logger().info("async flow line")
        await step()

    asyncio.run(pipeline())

    (run,) = client.read_flow_runs()
    (task_run,) = client.read_task_runs(flow_run_id=run.id)
    assert "async flow line" in messages(client.read_logs(flow_run_id=run.id))
    assert messages(client.read_logs(task_run_id=task_run.id)) == ["async task line"]


def test_a_task_run_outside_a_flow_stores_its_lines_under_its_task_run(client):
    @task
    def lonely() -> None:
        get_run_logger().info("no flow here")

    state = lonely(return_state=True)
    assert state.is_completed()
    flush_all()

    (task_run,) = client.read_task_runs()
    (line,) = client.read_logs(task_run_id=task_run.id)
    assert (line.message, line.flow_run_id, line.task_run_id) == (
        "no flow here",
        None,
        task_run.id,
    )


def test_log_prints_stores_prints_as_run_logs_and_tasks_inherit_it(client, capsys):
    @task
    def step() -> None:
        print("printed in the task")

    @flow(log_prints=True)
    def chatty() -> None:
        print("printed in the flow")
        step()

    chatty()

    (run,) = client.read_flow_runs()
    (task_run,) = client.read_task_runs(flow_run_id=run.id)
    lines = {line.message: line for line in client.read_logs(flow_run_id=run.id)}
    assert lines["printed in the flow"].task_run_id is None
    assert lines["printed in the flow"].level == logging.INFO
    assert lines["printed in the task"].task_run_id == task_run.id
    out = capsys.readouterr().out
    assert "printed in the flow" not in out
    assert "printed in the task" not in out


def test_without_log_prints_print_goes_to_stdout_and_is_not_stored(client, capsys):
    @task(log_prints=False)
    def quiet_step() -> None:
        print("task print stays a print")

    @flow(log_prints=True)
    def mixed() -> None:
        quiet_step()

    @flow(log_prints=False)
    def plain() -> None:
        print("flow print stays a print")

    mixed()
    plain()

    out = capsys.readouterr().out
    assert "task print stays a print" in out
    assert "flow print stays a print" in out
    stored = messages(client.read_logs())
    assert "task print stays a print" not in stored
    assert "flow print stays a print" not in stored


def test_print_to_another_file_is_left_alone_under_log_prints(client, capsys):
    @flow(log_prints=True)
    def to_stderr() -> None:
        print("meant for stderr", file=sys.stderr)

    to_stderr()

    assert "meant for stderr" in capsys.readouterr().err
    assert "meant for stderr" not in messages(client.read_logs())


def test_subflow_lines_are_stored_under_the_subflow_run(client):
    @task
    def child_step() -> None:
        get_run_logger().info("child task line")

    @flow
    def child() -> None:
        get_run_logger().info("child flow line")
        child_step()

    @flow
    def parent() -> None:
        get_run_logger().info("parent flow line")
        child()

    parent()

    (root,) = client.read_flow_runs(flow_name="parent")
    (sub,) = client.read_flow_runs(parent_flow_run_id=root.id)
    parent_lines = messages(client.read_logs(flow_run_id=root.id))
    child_lines = messages(client.read_logs(flow_run_id=sub.id))
    assert "parent flow line" in parent_lines
    assert "child flow line" not in parent_lines and "child task line" not in parent_lines
    assert "child flow line" in child_lines and "child task line" in child_lines
    assert "parent flow line" not in child_lines


CONSOLE_SCRIPT = textwrap.dedent(
    """
    from anabranch import flow, get_run_logger, task

    @task
    def step():
        get_run_logger().info("from the task")

    @flow(flow_run_name="console-check")
    def console_flow():
        get_run_logger().info("from the flow")
        get_run_logger().warning("a warning")
        step()

    console_flow()
    """
)
CLOCK = r"\d{2}:\d{2}:\d{2}\.\d{3}"


def test_run_logs_are_shown_on_stderr_with_time_level_and_run_label(home, tmp_path, capfd):
    script = tmp_path / "console_flow.py"
    script.write_text(CONSOLE_SCRIPT)

    # The child process inherits this process's stderr, which capfd captures.
    subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "ANABRANCH_HOME": str(home)},
        check=True,
        timeout=60,
    )

    err = capfd.readouterr().err
    flow_label, task_label = re.escape("Flow run 'console-check'"), re.escape("Task run 'step-0'")
    for level, label, message in [
        ("INFO   ", flow_label, "Beginning flow run 'console-check' for flow 'console-flow'"),
        ("INFO   ", flow_label, "from the flow"),
        ("WARNING", flow_label, "a warning"),
        ("INFO   ", task_label, "from the task"),
        ("INFO   ", flow_label, re.escape("Finished in state Completed()")),
    ]:
        pattern = rf"^{CLOCK} \| {level} \| {label} - {message}$"
        assert re.search(pattern, err, re.MULTILINE), f"{pattern!r} not in:\n{err}"


def test_console_lines_follow_the_current_sys_stderr():
    @flow(flow_run_name="redirected")
    def shout() -> None:
        get_run_logger().info("where does this go")

    shout()  # configures run logging if no run did before
    redirected = io.StringIO()
    with contextlib.redirect_stderr(redirected):
        shout()

    assert "Flow run 'redirected' - where does this go" in redirected.getvalue()


def test_get_run_logger_outside_a_run_raises_missing_context_error():
    with pytest.raises(MissingContextError, match=r"no active flow or task run.*@flow or @task"):
        get_run_logger()
    assert issubclass(MissingContextError, RuntimeError)


@pytest.mark.embedded_only
def test_the_home_folder_holds_the_store_the_lines_were_written_to(home: Path, client):
    @flow
    def noted() -> None:
        get_run_logger().info("stored line")

    noted()

    assert (home / "anabranch.db").exists()
    assert "stored line" in messages(client.read_logs())
