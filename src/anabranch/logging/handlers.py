"""Where run log lines go: the run's recorder (stored with its run ids) and the console."""

from __future__ import annotations

import logging
import sys
import threading
from datetime import datetime, timezone

from anabranch.schemas import LogRecord
from anabranch.schemas._construct import construct
from anabranch.settings import get_settings

_configured = False
_configure_lock = threading.Lock()
# Longer log lines are stored cut to this many characters, saying how much was left out:
# a line of hundreds of megabytes would otherwise cost the batch that carries it.
MAX_STORED_MESSAGE = 1_000_000


class RunLogHandler(logging.Handler):
    """Hands every record that carries run ids to that run's recorder."""

    def emit(self, record: logging.LogRecord) -> None:
        recorder = getattr(record, "recorder", None)
        if recorder is None:
            return
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatter_for_exc.formatException(record.exc_info)}"
        if len(message) > MAX_STORED_MESSAGE:
            left_out = len(message) - MAX_STORED_MESSAGE
            message = f"{message[:MAX_STORED_MESSAGE]}... [{left_out:,} more characters not stored]"
        recorder.record_log(
            construct(
                LogRecord,
                flow_run_id=getattr(record, "flow_run_id", None),
                task_run_id=getattr(record, "task_run_id", None),
                name=record.name,
                level=record.levelno,
                message=message,
                timestamp=_utc(record.created),
            )
        )

    formatter_for_exc = logging.Formatter()


class ConsoleFormatter(logging.Formatter):
    """``12:00:00.123 | INFO    | Flow run 'crimson-fox' - message``"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03d | %(levelname)-7s | %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        label = getattr(record, "run_label", None)
        text = super().format(record)
        if label:
            head, sep, tail = text.partition(" | ")
            level, sep2, rest = tail.partition(" | ")
            return f"{head}{sep}{level}{sep2}{label} - {rest}"
        return text


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the moment, so redirections made after the
    first run (``contextlib.redirect_stderr``, test capture) are honoured."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _utc(created: float) -> datetime:
    return datetime.fromtimestamp(created, timezone.utc)


def configure_run_logging() -> None:
    """Attach the run and console handlers to the ``anabranch`` logger, once per process.

    Called by the engine when the first run starts, never at import.
    """
    global _configured
    if _configured:
        return
    with _configure_lock:
        if _configured:
            return
        logger = logging.getLogger("anabranch")
        logger.setLevel(get_settings().logging_level.upper())
        logger.propagate = False
        run_handler = RunLogHandler()
        console = CurrentStderrHandler()
        console.setFormatter(ConsoleFormatter())
        logger.addHandler(run_handler)
        logger.addHandler(console)
        _configured = True
