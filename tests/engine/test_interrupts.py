"""Ctrl-C (SIGINT) or SIGTERM during a flow leaves no run Running or Pending: they end
Crashed, and the records are stored before the process exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from anabranch.schemas import StateType

SCRIPT = textwrap.dedent(
    """
    import sys, threading
    from anabranch import flow, task
    from anabranch.task_runners import ThreadPoolTaskRunner

    never = threading.Event()

    @task
    def blocked(i):
        if i == 0:
            sys.stdout.write("READY\\n")
            sys.stdout.flush()
        never.wait(60)

    @flow
    def child():
        blocked(0)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def parent():
        futures = [blocked.submit(i) for i in range(1, 5)]
        child()
        return [f.result() for f in futures]

    if __name__ == "__main__":
        parent()
    """
)


@pytest.mark.parametrize(
    ("signum", "error"),
    [(signal.SIGINT, "KeyboardInterrupt"), (signal.SIGTERM, "SIGTERM received")],
)
def test_a_signal_during_a_flow_leaves_no_run_running_or_pending(
    signum: int, error: str, tmp_path: Path, home: Path, client
):
    script = tmp_path / "interrupted.py"
    script.write_text(SCRIPT)
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ANABRANCH_HOME": str(home)},
    )
    try:
        assert process.stdout.readline().strip() == "READY"
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode != 0
    assert error in stderr

    flow_runs = client.read_flow_runs()
    task_runs = client.read_task_runs()
    assert len(flow_runs) == 2 and len(task_runs) == 5
    unfinished = {StateType.RUNNING, StateType.PENDING}
    assert [r.name for r in flow_runs + task_runs if r.state.type in unfinished] == []
    assert {r.state.type for r in flow_runs} == {StateType.CRASHED}
    parent = next(r for r in flow_runs if r.flow_name == "parent")
    assert "interrupted" in parent.state.message
