"""Flow-run heartbeats: while a flow run is Running, its process re-records it every
``heartbeat_seconds`` with a fresh ``heartbeat`` time, through the same batched recorder as
everything else. The server marks a Running flow run whose heartbeats stop as Crashed."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from anabranch import _clock
from anabranch.settings import get_settings


class Heartbeats:
    """The Running flow runs of this process and the thread that beats for them."""

    def __init__(self) -> None:
        self._runs: dict[uuid.UUID, tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._interval = 10.0

    def add(self, run: Any, recorder: Any) -> None:
        vars(run)["heartbeat"] = _clock.now()
        with self._lock:
            self._runs[run.id] = (run, recorder)
            if self._thread is None:
                self._interval = get_settings().heartbeat_seconds
                self._thread = threading.Thread(
                    target=self._beat_forever, name="anabranch-heartbeat", daemon=True
                )
                self._thread.start()

    def remove(self, run_id: uuid.UUID) -> None:
        with self._lock:
            self._runs.pop(run_id, None)

    def _beat_forever(self) -> None:
        stop = threading.Event()
        while not stop.wait(self._interval):
            with self._lock:
                beating = list(self._runs.values())
            now = _clock.now()
            for run, recorder in beating:
                vars(run)["heartbeat"] = now
                recorder.record_flow_run(run, None)


heartbeats = Heartbeats()
