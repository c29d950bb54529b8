"""`make demo` (examples/fan_out.py) runs its parent flow, shows the run tree, and ends by
saying what to try next, with the id of the run it just made."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).parents[2] / "examples" / "fan_out.py"


def test_the_demo_ends_with_what_to_try_next(home: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "ANABRANCH_HOME": str(home)},
    )
    assert done.returncode == 0, done.stderr
    tail = done.stdout.split("What to try next:")[1]
    run_id = re.search(r"flow-run logs ([0-9a-f-]{36})", tail)
    assert run_id is not None, tail
    assert "parent / " in done.stdout and run_id.group(1) in done.stdout
    assert "anabranch server start" in tail
