"""`import anabranch` stays light: no I/O, no threads, no database or server libraries."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return result.stdout.strip()


def test_import_starts_no_thread_and_loads_no_heavy_library():
    out = run_python(
        """
        import sys, threading
        import anabranch
        heavy = [m for m in ("sqlalchemy", "alembic", "fsspec", "typer", "rich",
                             "pydantic_settings", "fastapi", "httpx", "cloudpickle")
                 if m in sys.modules]
        print(threading.active_count(), heavy)
        """
    )
    assert out == "1 []"


def test_public_names_are_importable_from_the_documented_modules():
    out = run_python(
        """
        from anabranch import flow, task, get_run_logger, tags, unmapped, allow_failure
        from anabranch.task_runners import ThreadPoolTaskRunner, ProcessPoolTaskRunner
        from anabranch.futures import wait, as_completed
        from anabranch.states import Completed, Failed, Crashed, Late, AwaitingRetry
        from anabranch.utilities.asyncutils import gather
        from anabranch.client import get_client
        print("ok")
        """
    )
    assert out == "ok"


def test_the_server_never_loads_the_unpickler():
    # Import-linter holds the server's own imports to this; here the whole process is seen,
    # the package's public API included, which the server process imports too.
    out = run_python(
        """
        import sys
        import anabranch.server.app
        print("cloudpickle" in sys.modules)
        """
    )
    assert out == "False"
