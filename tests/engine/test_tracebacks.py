"""A failed task that fails its flow is told with one traceback in the logs, of the user's
frames only (ANABRANCH_LOGGING_ENGINE_FRAMES shows anabranch's); the flow's own log line
points at it, and the error the script dies of shows the user's frames too."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded_only

SCRIPT = """
from anabranch import flow, task

@task
def divide(x):
    return x / 0

@flow
def calc():
    return divide(1)

if __name__ == "__main__":
    calc()
"""


def run(tmp_path: Path, home: Path, **settings: str) -> str:
    script = tmp_path / "calc.py"
    script.write_text(textwrap.dedent(SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "ANABRANCH_HOME": str(home), **settings},
    )
    assert done.returncode == 1
    return done.stderr


def test_one_logged_traceback_of_the_user_s_frames(tmp_path: Path, home: Path) -> None:
    told = run(tmp_path, home)
    logged, _, final = told.partition("its traceback is logged above")
    assert logged.count("Traceback (most recent call last)") == 1
    assert "calc.py\", line 6, in divide" in logged
    assert "_engine" not in told
    # What the script dies of: the call in the script, down to the division.
    assert final.count("Traceback (most recent call last)") == 1
    assert "return divide(1)" in final and "return x / 0" in final
    assert len(told.splitlines()) < 30


def test_the_setting_shows_the_engine_s_frames(tmp_path: Path, home: Path) -> None:
    told = run(tmp_path, home, ANABRANCH_LOGGING_ENGINE_FRAMES="true")
    assert "_engine/lifecycle.py" in told
