"""Tracebacks of failed runs that show the user's code once.

A run's exception travels through the engine (the lifecycle, timeouts, the call of the
function) and, when a task's failure fails its flow, through the flow's engine too: printed
as is, one ZeroDivisionError took 101 lines, three tracebacks of mostly anabranch's frames.
Here anabranch's own frames are folded out of the traceback (ANABRANCH_LOGGING_ENGINE_FRAMES
shows them), and an exception is logged with its traceback by the first run it fails; the
runs it fails after that log one line.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

from anabranch.settings import get_settings

_PACKAGE = str(Path(__file__).resolve().parents[1]) + os.sep
_TOLD = "__anabranch_traceback_logged__"


def fold_engine_frames(exc: BaseException) -> None:
    """Drop anabranch's frames from ``exc``'s traceback, unless the setting keeps them or
    no frame of the user's would be left."""
    if get_settings().logging_engine_frames:
        return
    kept = [tb for tb in _frames(exc.__traceback__) if not _is_engine(tb)]
    if not kept:
        return
    for tb, after in zip(kept, [*kept[1:], None], strict=True):
        tb.tb_next = after
    exc.__traceback__ = kept[0]


def first_to_log(exc: BaseException) -> bool:
    """True the first time it is asked of ``exc`` (that run logs its traceback)."""
    if getattr(exc, _TOLD, False):
        return False
    # An exception type that takes no attributes is logged by each run it fails.
    with contextlib.suppress(AttributeError):
        setattr(exc, _TOLD, True)
    return True


def _frames(tb: TracebackType | None) -> list[TracebackType]:
    found = []
    while tb is not None:
        found.append(tb)
        tb = tb.tb_next
    return found


def _is_engine(tb: TracebackType) -> bool:
    return tb.tb_frame.f_code.co_filename.startswith(_PACKAGE)
