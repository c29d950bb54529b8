"""Every test gets its own ANABRANCH_HOME (store and results) in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from anabranch.client import get_client
from anabranch.client.recorder import flush_all
from anabranch.testing import temporary_home


@pytest.fixture(autouse=True)
def home(tmp_path: Path) -> Iterator[Path]:
    with temporary_home(tmp_path / "home") as path:
        yield path


@pytest.fixture
def client(home: Path):
    """A client on this test's store; reading through it first stores what is buffered."""
    flush_all()
    return get_client()
