"""Tests that load flows from files they write: keep those imports from leaking."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def isolated_imports(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Work in ``folder``; what loading flows adds to sys.path and sys.modules (modules
    from files under ``folder``) is taken away again afterwards."""
    monkeypatch.chdir(folder)
    path = list(sys.path)
    try:
        yield
    finally:
        sys.path[:] = path
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if file is not None and Path(file).is_relative_to(folder):
                del sys.modules[name]
