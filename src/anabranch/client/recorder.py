"""The background writer: run snapshots, state transitions and logs, written in batches.

The hot path (a task run changing state) only appends to a list; one daemon thread turns what
accumulated into a RecordBatch every ``recorder_flush_interval`` seconds (or sooner when a lot
is waiting) and hands it to the client. ``flush()`` waits until everything recorded before the
call is stored; it runs at the end of every root flow run and at interpreter exit.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic_core import to_jsonable_python

from anabranch.client import get_client
from anabranch.schemas import FlowRun, LogRecord, RecordBatch, State, StateRecord, TaskRun
from anabranch.schemas._construct import construct
from anabranch.settings import PerStore

_EAGER_BATCH = 2000
_MAX_PARAMETER_REPR = 200


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_PARAMETER_REPR else text[: _MAX_PARAMETER_REPR - 3] + "..."


def jsonable_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON; values JSON cannot hold are recorded as their (short) repr."""
    return to_jsonable_python(parameters, fallback=_short_repr)


class Recorder:
    """Buffers records for one store and writes them from a background thread."""

    def __init__(self, client_factory: Callable[[], Any], flush_interval: float = 0.05) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self._interval = flush_interval
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)
        self._pending: list[tuple[str, Any, Any]] = []
        self._enqueued = 0
        self._stored = 0
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def record_flow_run(self, run: FlowRun, state: State | None) -> None:
        self._append("flow", run, state)

    def record_task_run(self, run: TaskRun, state: State | None) -> None:
        self._append("task", run, state)

    def record_log(self, log: LogRecord) -> None:
        self._append("log", log, None)

    def _append(self, kind: str, obj: Any, state: State | None) -> None:
        # A shallow copy of the run's fields is the snapshot; the run object keeps changing.
        payload = dict(obj.__dict__) if kind != "log" else obj
        with self._lock:
            self._pending.append((kind, payload, state))
            self._enqueued += 1
            backlog = len(self._pending)
            if self._thread is None:
                self._start()
        if backlog >= _EAGER_BATCH:
            self._wake.set()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="anabranch-recorder", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until everything recorded so far is stored; False if ``timeout`` ran out."""
        with self._lock:
            target = self._enqueued
            if self._stored >= target:
                return True
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._stored < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._written.wait(remaining)
        return True

    def close(self) -> None:
        """Store what is left and stop the thread (registered to run at interpreter exit)."""
        if self._closed:
            return
        if not self.flush(timeout=30.0):
            print("anabranch: some run records could not be stored before exit", file=sys.stderr)
        self._closed = True
        self._wake.set()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._lock:
                taken, self._pending = self._pending, []
            if taken:
                self._write(_build_batch(taken))
            with self._lock:
                self._stored += len(taken)
                self._written.notify_all()

    def _write(self, batch: RecordBatch) -> None:
        delay = 0.05
        for attempt in range(8):
            try:
                if self._client is None:
                    self._client = self._client_factory()
                self._client.write_batch(batch)
                return
            except Exception as exc:
                if attempt == 7:
                    print(
                        f"anabranch: dropped a batch of run records after 8 attempts: {exc}",
                        file=sys.stderr,
                    )
                    return
                time.sleep(delay)
                delay = min(delay * 2, 2.0)


def _build_batch(taken: list[tuple[str, Any, Any]]) -> RecordBatch:
    """Coalesce: the latest snapshot of each run, every state in order, every log."""
    flow_runs: dict[Any, dict[str, Any]] = {}
    task_runs: dict[Any, dict[str, Any]] = {}
    states: list[StateRecord] = []
    logs: list[LogRecord] = []
    for kind, payload, state in taken:
        if kind == "log":
            logs.append(payload)
            continue
        (flow_runs if kind == "flow" else task_runs)[payload["id"]] = payload
        if state is not None:
            states.append(construct(StateRecord, run_id=payload["id"], state=state))
    return RecordBatch.model_construct(
        flow_runs=[_snapshot(FlowRun, p) for p in flow_runs.values()],
        task_runs=[_snapshot(TaskRun, p) for p in task_runs.values()],
        states=states,
        logs=logs,
    )


def _snapshot(model: type[Any], payload: dict[str, Any]) -> Any:
    payload["parameters"] = jsonable_parameters(payload["parameters"])
    return construct(model, **payload)


_recorders: PerStore[Recorder] = PerStore(
    lambda settings: Recorder(get_client, settings.recorder_flush_interval)
)


def get_recorder() -> Recorder:
    """The recorder for the store the current settings point at (one per store per process)."""
    return _recorders.get()


def flush_all(timeout: float | None = 30.0) -> None:
    """Store everything every recorder in this process holds."""
    for recorder in _recorders.all():
        recorder.flush(timeout)
