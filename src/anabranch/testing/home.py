"""A throwaway ``ANABRANCH_HOME``: its own SQLite store and result storage."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from anabranch._private import private_dir
from anabranch.client.recorder import flush_all


@contextlib.contextmanager
def temporary_home(path: str | Path | None = None) -> Iterator[Path]:
    """Point anabranch at a fresh home for the duration of the block; everything recorded
    inside is stored before it ends. A ``path`` that does not exist is created private
    (0700), as anabranch creates every home."""
    with contextlib.ExitStack() as stack:
        if path is None:
            path = stack.enter_context(tempfile.TemporaryDirectory(prefix="anabranch-"))
        home = private_dir(path)
        previous = os.environ.get("ANABRANCH_HOME")
        os.environ["ANABRANCH_HOME"] = str(home)
        try:
            yield home
        finally:
            flush_all()
            if previous is None:
                os.environ.pop("ANABRANCH_HOME", None)
            else:
                os.environ["ANABRANCH_HOME"] = previous
