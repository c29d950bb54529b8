"""`anabranch flow-run logs ID [--with-subflows] [--level LEVEL] [--follow]`."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from pathlib import Path

from anabranch import flow, get_run_logger
from anabranch.client import get_client
from anabranch.client.recorder import flush_all
from anabranch.testing import wait_until
from server_harness import ANABRANCH


@flow(name="inner")
def inner() -> None:
    get_run_logger().warning("inner warning")


@flow(name="outer")
def outer() -> None:
    get_run_logger().info("outer info")
    inner()


def outer_run_id() -> str:
    outer()
    flush_all()
    (run,) = get_client().read_flow_runs(flow_name="outer")
    return str(run.id)


def test_subflow_lines_come_with_the_option_and_name_their_run(cli) -> None:
    run_id = outer_run_id()
    own = cli("flow-run", "logs", run_id).stdout
    assert "outer info" in own and "inner warning" not in own
    (inner_run,) = get_client().read_flow_runs(flow_name="inner")
    every = cli("flow-run", "logs", run_id, "--with-subflows").stdout
    assert f"Flow run '{inner_run.name}' - inner warning" in every


def test_level_keeps_the_lines_at_or_above_it(cli) -> None:
    run_id = outer_run_id()
    warnings = cli("flow-run", "logs", run_id, "--with-subflows", "--level", "warning").stdout
    assert "inner warning" in warnings and "outer info" not in warnings
    bad = cli("flow-run", "logs", run_id, "--level", "loud")
    assert bad.returncode == 1 and "--level 'loud' is not a level" in bad.stderr


def line_with(lines: queue.SimpleQueue[str], text: str) -> str:
    """The next line holding ``text`` (the lines before it are the run's own)."""
    while True:
        line = lines.get(timeout=60)
        if text in line:
            return line


def test_follow_prints_lines_as_they_come_and_ends_with_the_run(tmp_path: Path, home) -> None:
    gate = tmp_path / "gate"
    script = tmp_path / "slow.py"
    script.write_text(
        "import time\n"
        "from pathlib import Path\n"
        "from anabranch import flow, get_run_logger\n"
        "from anabranch.client.recorder import flush_all\n"
        "@flow(name='slow')\n"
        "def slow():\n"
        "    log = get_run_logger()\n"
        "    log.info('first line')\n"
        "    flush_all()\n"
        f"    while not Path({str(gate)!r}).exists():\n"
        "        time.sleep(0.05)\n"
        "    log.info('last line')\n"
        "slow()\n"
    )
    runner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: get_client().read_flow_runs(flow_name="slow"), timeout=60,
                   what="the slow run stored")
        (run,) = get_client().read_flow_runs(flow_name="slow")
        follower = subprocess.Popen([ANABRANCH, "flow-run", "logs", str(run.id), "--follow"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        assert follower.stdout is not None
        threading.Thread(target=lambda: [lines.put(x) for x in follower.stdout],
                         daemon=True).start()
        line_with(lines, "first line")
        gate.touch()
        line_with(lines, "last line")
        assert follower.wait(timeout=60) == 0  # the run ended: so does following
    finally:
        gate.touch()
        runner.wait(timeout=60)
