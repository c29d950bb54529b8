"""The background writer: run snapshots, state transitions and logs, written in batches.

The hot path (a task run changing state) only appends to a list; one daemon thread turns what
accumulated into a RecordBatch every ``recorder_flush_interval`` seconds (or sooner when a lot
is waiting) and hands it to the client. ``flush()`` waits until everything recorded before the
call is stored; it runs at the end of every root flow run and at interpreter exit.

Through a server (``back_to_back``), the thread wakes once a few hundred records wait and then
sends batch after batch while records keep coming, each holding what arrived while the last
one was written: the server works in its own process while the flow runs, so when the flow
ends little is left to wait for. Embedded, the writes take the flow's own CPU (the GIL), and
fewer, larger batches cost it less (measured: 0.11 s against 0.13 s for 1,000 tasks).

A batch the store can not take is never retried forever: the HTTP client retries within its
own time budget (the recorder does not retry on top of that), the embedded client's errors
within ``_RETRY_SECONDS``; then the batch is dropped with one message on stderr naming the
store and what was lost. A batch holding a state change the state rules refuse is stored
but for that change, with one warning, and never retried.
"""

from __future__ import annotations

import atexit
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic_core import to_jsonable_python

from anabranch.client import get_client
from anabranch.exceptions import AnabranchError, InvalidStateTransition, ServerUnavailable
from anabranch.schemas import FlowRun, LogRecord, RecordBatch, State, StateRecord, TaskRun
from anabranch.schemas._construct import construct
from anabranch.settings import PerStore

# Records waiting that wake the writer before its interval is up. Through a server: enough
# for a batch to be worth a round trip, few enough that it works while the flow still runs.
_EAGER_BATCH = 2000
_EAGER_BATCH_BACK_TO_BACK = 300
_MAX_PARAMETER_REPR = 200
# How long a batch the embedded store refuses with an unexpected error (a database that is
# locked or unreachable) is retried, from its first attempt. The HTTP client's errors are
# final: it has retried within its own budget already.
_RETRY_SECONDS = 10.0


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_PARAMETER_REPR else text[: _MAX_PARAMETER_REPR - 3] + "..."


def jsonable_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON; values JSON cannot hold are recorded as their (short) repr."""
    return to_jsonable_python(parameters, fallback=_short_repr)


class Recorder:
    """Buffers records for one store and writes them from a background thread."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        flush_interval: float = 0.05,
        *,
        back_to_back: bool = False,
    ) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self._interval = flush_interval
        self._back_to_back = back_to_back
        self._eager = _EAGER_BATCH_BACK_TO_BACK if back_to_back else _EAGER_BATCH
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
        if backlog == self._eager:
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
        wrote = False
        while not self._closed:
            # Back to back while records keep coming: the next batch is what arrived while
            # the last one was written. Otherwise wait for the interval or a wake-up.
            if not (wrote and self._back_to_back):
                self._wake.wait(self._interval)
            self._wake.clear()
            with self._lock:
                taken, self._pending = self._pending, []
            wrote = bool(taken)
            done = len(taken)
            if taken:
                failure = self._write(_build_batch(taken))
                if failure is not None:
                    done += self._drop(taken, failure)
            with self._lock:
                self._stored += done
                self._written.notify_all()

    def _write(self, batch: RecordBatch) -> BaseException | None:
        """Store the batch; the error that lost it, or None (stored, or all but refused
        state changes)."""
        started = time.monotonic()
        delay = 0.05
        while True:
            try:
                if self._client is None:
                    self._client = self._client_factory()
                self._client.write_batch(batch)
                return None
            except InvalidStateTransition as exc:
                # The rest is stored; resending can not change the rule's answer.
                print(
                    f"anabranch: warning: {exc} The refused runs keep their stored state.",
                    file=sys.stderr,
                )
                return None
            except AnabranchError as exc:
                # The client's last word: a refusal, or a server that stayed unavailable
                # for the HTTP client's whole retry budget.
                return exc
            except Exception as exc:
                if time.monotonic() - started + delay > _RETRY_SECONDS:
                    return exc
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _drop(self, taken: list[tuple[str, Any, Any]], failure: BaseException) -> int:
        """Give up ``taken`` with one message; when the store is unavailable, also what
        queued behind it meanwhile (each batch would wait out the whole retry budget again,
        and a flow's end waits for them; what is recorded afterwards is tried afresh).
        Returns how many more records were given up."""
        more: list[tuple[str, Any, Any]] = []
        if isinstance(failure, ServerUnavailable):
            with self._lock:
                more, self._pending = self._pending, []
        reason = failure if isinstance(failure, AnabranchError) else repr(failure)
        print(
            f"anabranch: lost {_describe(taken + more)}: {_store_name(self._client)} did not "
            f"store them. {reason}",
            file=sys.stderr,
        )
        return len(more)


def _describe(records: list[tuple[str, Any, Any]]) -> str:
    """``"the records of 1 flow run and 1,000 task runs (3,003 records, 2 log lines)"``."""
    flow_runs = {payload["id"] for kind, payload, _ in records if kind == "flow"}
    task_runs = {payload["id"] for kind, payload, _ in records if kind == "task"}
    logs = sum(kind == "log" for kind, _, _ in records)
    runs = [
        _count(len(flow_runs), "flow run"),
        _count(len(task_runs), "task run"),
    ]
    return (
        f"the records of {' and '.join(runs)} ({_count(len(records), 'record')}, "
        f"{_count(logs, 'log line')})"
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


_PASSWORD = re.compile(r"(//[^/:@]*:)[^/@]*@")


def _store_name(client: Any) -> str:
    api_url = getattr(client, "api_url", None)
    if api_url:
        return f"the anabranch server at {api_url}"
    database_url = getattr(client, "database_url", None)
    if database_url:
        # Never print a password that is part of the URL.
        shown = _PASSWORD.sub(r"\1***@", database_url)
        return f"the database {shown}"
    return "the store"


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
    lambda settings: Recorder(
        get_client, settings.recorder_flush_interval, back_to_back=bool(settings.api_url)
    )
)


def get_recorder() -> Recorder:
    """The recorder for the store the current settings point at (one per store per process)."""
    return _recorders.get()


def flush_all(timeout: float | None = 30.0) -> None:
    """Store everything every recorder in this process holds."""
    for recorder in _recorders.all():
        recorder.flush(timeout)
