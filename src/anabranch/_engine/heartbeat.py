"""Flow-run heartbeats: while a flow run is Running, its process re-records it every
``heartbeat_seconds`` with a fresh ``heartbeat`` time, through the same batched recorder as
everything else. The server marks a Running flow run whose heartbeats stop as Crashed.

Root runs are also watched for cancellation asked for from outside (see cancellation), by
a thread of its own: a slow answer must never delay a heartbeat. On the embedded store the
same thread looks for other processes' dead runs (``client.upkeep``): there is no server
to do it."""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any

from anabranch import _clock
from anabranch._engine import cancellation
from anabranch.client import get_client, upkeep
from anabranch.schemas import StateType
from anabranch.settings import get_settings


class Heartbeats:
    """The Running flow runs of this process and the thread that beats for them."""

    def __init__(self) -> None:
        self._runs: dict[uuid.UUID, tuple[Any, Any]] = {}
        self._roots: set[uuid.UUID] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._interval: float | None = None

    def add(self, run: Any, recorder: Any, *, watch_cancellation: bool = False) -> None:
        vars(run)["heartbeat"] = _clock.now()
        with self._lock:
            if self._interval is None:
                self._interval = get_settings().heartbeat_seconds
            self._runs[run.id] = (run, recorder)
            if watch_cancellation:
                self._roots.add(run.id)
                if self._watcher is None:
                    self._watcher = threading.Thread(
                        target=self._watch_forever, name="anabranch-cancel-watch", daemon=True
                    )
                    self._watcher.start()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._beat_forever, name="anabranch-heartbeat", daemon=True
                )
                self._thread.start()

    def remove(self, run_id: uuid.UUID) -> None:
        with self._lock:
            self._runs.pop(run_id, None)
            self._roots.discard(run_id)

    def _beat_forever(self) -> None:
        stop = threading.Event()
        while not stop.wait(self._interval or 0):
            with self._lock:
                beating = list(self._runs.values())
            now = _clock.now()
            for run, recorder in beating:
                vars(run)["heartbeat"] = now
                recorder.record_flow_run(run, None)

    def _watch_forever(self) -> None:
        stop = threading.Event()
        while not stop.wait(self._interval or 0):
            with self._lock:
                roots = list(self._roots)
            if roots and _any_cancelling(roots):
                cancellation.stop_for_cancellation()
            _crash_dead_runs()


def _crash_dead_runs() -> None:
    # When the store is unreachable, the next beat looks again.
    with contextlib.suppress(Exception):
        upkeep.crash_dead_runs()


def _any_cancelling(run_ids: list[uuid.UUID]) -> bool:
    try:
        client = get_client()
        return any(
            (state := client.read_flow_run(run_id).state) is not None
            and state.type is StateType.CANCELLING
            for run_id in run_ids
        )
    except Exception:
        # Not stored yet, or the store is unreachable: the next beat looks again.
        return False


heartbeats = Heartbeats()
