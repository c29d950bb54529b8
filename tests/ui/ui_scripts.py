"""Flow scripts the browser tests run as real processes recording to the test's server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

FAMILY = '''
import sys
from anabranch import flow

FAILING = int(sys.argv[3])

@flow
def child(i: int) -> int:
    if i == FAILING:
        raise ValueError(f"child {i} could not read its input")
    return i

@flow(flow_run_name=sys.argv[1])
def parent(n: int) -> int:
    total = 0
    for i in range(n):
        try:
            total += child(i)
        except ValueError:
            pass
    return total

if __name__ == "__main__":
    parent(int(sys.argv[2]))
'''

GATED = '''
import pathlib, sys, time
from anabranch import flow

@flow(flow_run_name=sys.argv[1])
def gated(gate: str) -> str:
    started = pathlib.Path(gate + ".started")
    started.write_text("yes")
    deadline = time.monotonic() + 120
    while not pathlib.Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return "done"

if __name__ == "__main__":
    gated(sys.argv[2])
'''


def run_script(folder: Path, source: str, *args: str, env: dict[str, str],
               wait: bool = True) -> subprocess.Popen[bytes]:
    """Run ``source`` as a script in ``folder`` with ``args``; waits for it (bounded) unless
    ``wait`` is False."""
    script = folder / f"script-{abs(hash(source)) % 10_000}.py"
    script.write_text(textwrap.dedent(source))
    process = subprocess.Popen([sys.executable, str(script), *args], cwd=folder, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if wait:
        output, _ = process.communicate(timeout=180)
        assert process.returncode == 0, output.decode(errors="replace")
    return process

FAILING_TASK = '''
import sys
from anabranch import flow, task

@task
def divide(x: int) -> float:
    return 1 / x

@flow(flow_run_name=sys.argv[1])
def ratios() -> list[float]:
    results = [divide(x) for x in (1, 2)]
    try:
        results.append(divide(0))
    except ZeroDivisionError:
        pass
    return results

if __name__ == "__main__":
    ratios()
'''

CHATTY = '''
import logging, sys
from anabranch import flow, get_run_logger

@flow
def helper() -> None:
    get_run_logger().error("the helper could not reach the warehouse")

@flow(flow_run_name=sys.argv[1])
def chatty() -> None:
    logger = get_run_logger()
    for i in range(600):
        logger.info("line %03d of the chatty flow", i)
    logger.warning("disk almost full")
    helper()

if __name__ == "__main__":
    chatty()
'''
