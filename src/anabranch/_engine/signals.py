"""SIGTERM during a root flow run: raise in the main thread so the engine can mark its runs
Crashed and store them before the process exits (the default action would just die)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from anabranch.exceptions import TerminationSignal


def _raise_termination(signum: int, frame: Any) -> None:
    print("anabranch: SIGTERM received; ending this process's runs.", file=sys.stderr)
    raise TerminationSignal(128 + signum)


def handles_termination() -> bool:
    """Whether SIGTERM now raises TerminationSignal (a root flow runs in the main thread)."""
    return signal.getsignal(signal.SIGTERM) is _raise_termination


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[None]:
    """While the block runs, SIGTERM raises TerminationSignal, unless the program installed
    its own handler (which we leave alone) or this is not the main thread (signals only
    reach the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_termination)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
