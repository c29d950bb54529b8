"""``log_prints=True``: inside such a run, ``print`` to stdout becomes an INFO log line.

A single shim replaces ``builtins.print`` the first time a run asks for it; it checks the
current run context on every call, so threads and runs without log_prints are unaffected.
"""

from __future__ import annotations

import builtins
import io
import sys
import threading
from typing import Any

from anabranch.context import FlowRunContext, TaskRunContext
from anabranch.logging.loggers import get_run_logger

_original_print = builtins.print
_install_lock = threading.Lock()


def _print(*args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None,
           flush: bool = False) -> None:
    ctx = TaskRunContext.get() or FlowRunContext.get()
    if ctx is None or not ctx.log_prints or file not in (None, sys.stdout):
        _original_print(*args, sep=sep, end=end, file=file, flush=flush)
        return
    buffer = io.StringIO()
    _original_print(*args, sep=sep, end="", file=buffer)
    get_run_logger().info(buffer.getvalue())


def install_print_capture() -> None:
    """Install the print shim once per process."""
    if builtins.print is _print:
        return
    with _install_lock:
        builtins.print = _print
