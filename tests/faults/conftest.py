"""The ``lab`` fixture: databases, servers and processes of one fault-injection test.

These tests start their own servers and processes (harness.py), so each module marks itself
``embedded_only``: the suite runs once, not again under every ``--transport``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from faults.harness import Lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """Fresh databases, restartable servers and flow processes for one test; every process
    is ended and every PostgreSQL database dropped afterwards."""
    lab = Lab(tmp_path / "lab")
    try:
        yield lab
    finally:
        lab.close()
