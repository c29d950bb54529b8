"""examples/data_platform/walkthrough.sh, run as a user runs it: a work pool, three deployed
child flows, a worker in the background, and the seed 004 parent calling run_deployment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from server_harness import ANABRANCH, clean_env

pytestmark = [pytest.mark.embedded_only, pytest.mark.timeout(180)]

WALKTHROUGH = Path(__file__).parents[2] / "examples" / "data_platform" / "walkthrough.sh"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_data_platform_walkthrough_completes_the_parent_and_its_three_children(
    tmp_path: Path,
) -> None:
    store = tmp_path / "walkthrough-home"
    env = clean_env(WALKTHROUGH_HOME=str(store), ANABRANCH_BIN=str(Path(sys.executable).parent))

    result = subprocess.run(
        ["bash", str(WALKTHROUGH)], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )

    output = result.stdout + result.stderr
    worker_log = store / "worker.log"
    logs = worker_log.read_text(errors="replace") if worker_log.exists() else ""
    assert result.returncode == 0, output + logs
    parent_id, state = re.search(r"parent flow run (\S+) ended (\w+)", result.stdout).groups()
    assert state == "Completed", output
    # The worker started in the background was stopped by the script's exit trap.
    worker_pid = int(re.search(r"kill -TERM (\d+)", result.stdout).group(1))
    assert _gone(worker_pid)

    inspect = subprocess.run(
        [ANABRANCH, "flow-run", "inspect", parent_id, "--output", "json"],
        env=clean_env(ANABRANCH_HOME=str(store)), capture_output=True, text=True, timeout=60,
    )
    assert inspect.returncode == 0, inspect.stderr
    tree = json.loads(inspect.stdout)
    assert (tree["flow_name"], tree["state"]["type"]) == ("orchestrate", "COMPLETED")
    children = [child for child in tree["children"] if child["kind"] == "flow_run"]
    assert [(c["flow_name"], c["state"]["type"]) for c in children] == [
        ("extract", "COMPLETED"), ("transform-load", "COMPLETED"), ("cleanup", "COMPLETED"),
    ]
    assert all(c["deployment_id"] and c["parent_flow_run_id"] == parent_id for c in children)
    # The script shows the run tree to the user as well.
    assert "orchestrate / " in result.stdout and "cleanup / " in result.stdout
