"""The in-process transport: each operation runs its orchestration function on a local
database, in one transaction (a write transaction for the operations that write).

A call that fails because the database connection failed (PostgreSQL restarted or a
connection cut, SQLite locked past its busy timeout) is run again, whole, with back-off for
ANABRANCH_CLIENT_RETRY_SECONDS: each call is one transaction, rolled back when it fails,
and the writes that could be left half-answered (slots, deployment runs) are idempotent.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from anabranch import _clock
from anabranch._redact import mask_passwords
from anabranch.client._changes import changes as _changes
from anabranch.client.aio import AsyncEmbeddedClient, OpensAsync
from anabranch.database import get_engine, upgrade, write_transaction
from anabranch.exceptions import AnabranchError, StoreUnavailable
from anabranch.operations import Operation, StoreOperations
from anabranch.orchestration import dispatch, schedules, zombies
from anabranch.schemas import FlowRun
from anabranch.schemas.deployments import WorkerPoll, WorkerPollAnswer
from anabranch.settings import get_settings

# How often long waits (a worker's poll, run_deployment's wait) look at the database.
_POLL_SECONDS = 0.05


class EmbeddedClient(StoreOperations, OpensAsync):
    """A client over the database at ``database_url`` (SQLite or PostgreSQL).

    Opening migrates the database to the newest schema (once per process per URL). The
    client holds no connection of its own: each call borrows one from the URL's shared
    engine, so one client may be used from any number of threads, and it is cheap to make.
    """

    def __init__(self, database_url: str, *, retry_seconds: float | None = None) -> None:
        self.database_url = database_url
        self.shown_url = mask_passwords(database_url)
        settings = get_settings()
        if retry_seconds is None:
            retry_seconds = settings.client_retry_seconds
        self.retry_seconds = retry_seconds
        self.heartbeat_seconds = settings.heartbeat_seconds
        upgrade(database_url)

    def __repr__(self) -> str:
        return f"EmbeddedClient({self.shown_url!r})"

    def _call(self, operation: Operation, arguments: dict[str, Any]) -> Any:
        if operation.implementation is None:
            # A wait or a job that spans transactions: carried out by a method here.
            result = getattr(self, "_" + operation.name)(**arguments)
        else:
            function = _implementation(operation.implementation)
            result = self.run(function, arguments, writes=operation.writes)
        if operation.wakes is not None:
            ended, work = operation.wakes(arguments, result)
            ended = list(ended)
            if ended or work:
                # Long waits in this process (a worker's poll, a run_deployment) look again.
                _changes.notify(ended, work=work)
        return result

    def run(self, function: Callable[..., Any], arguments: dict[str, Any], *, writes: bool) -> Any:
        """``function(conn, **arguments)`` (with ``now=`` when it takes it) in one
        transaction, run again whole while the database connection is lost."""
        if _takes_now(function):
            arguments = {**arguments, "now": _clock.now()}
        backoff: _clock.Backoff | None = None
        while True:
            try:
                return self._once(function, arguments, writes)
            except sa.exc.DBAPIError as exc:
                if not _connection_lost(exc):
                    raise
                backoff = backoff or _clock.Backoff(self.retry_seconds)
                if not backoff.wait():
                    raise StoreUnavailable(
                        f"The database {self.shown_url} could not be reached for "
                        f"{backoff.elapsed():.0f} s ({type(exc.orig).__name__}: "
                        f"{str(exc.orig).strip()}). ANABRANCH_CLIENT_RETRY_SECONDS sets how "
                        "long anabranch keeps trying."
                    ) from exc

    def _once(self, function: Callable[..., Any], arguments: dict[str, Any], writes: bool) -> Any:
        if not writes:
            with self._connect() as conn:
                return function(conn, **arguments)
        kept: AnabranchError | None = None
        with write_transaction(self.database_url) as conn:
            try:
                return function(conn, **arguments)
            except AnabranchError as exc:
                if not exc.keeps_the_rest:
                    raise
                kept = exc  # raised once the rest is committed
        raise kept

    def _connect(self) -> Any:
        # Looked up per call rather than kept: after a fork, get_engine hands the child its own.
        return get_engine(self.database_url).connect()

    def async_client(self) -> AsyncEmbeddedClient:
        return AsyncEmbeddedClient(self)

    def close(self) -> None:
        """Nothing to release: connections belong to the engine shared by the whole process."""

    def __enter__(self) -> EmbeddedClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None

    # What the server's services do, for the embedded store (see client.upkeep)

    def crash_zombies(self) -> list[uuid.UUID]:
        """Crash the runs whose process stopped heartbeating and free their slots (see
        ``orchestration.zombies``)."""
        silent_for = zombies.silence_limit(self.heartbeat_seconds)
        crashed: list[uuid.UUID] = self.run(
            zombies.crash_zombies, {"silent_for": silent_for}, writes=True
        )
        return crashed

    # The operations carried out here: waits and a job that span several transactions

    def _wait_for_flow_run(self, flow_run_id: uuid.UUID, timeout: float) -> FlowRun:
        # No server looks for dead runs here: the waiter does, so a child whose process
        # died ends Crashed instead of being waited for forever.
        deadline = _clock.monotonic() + timeout
        next_check = _clock.monotonic() + self.heartbeat_seconds
        while True:
            run = self.read_flow_run(flow_run_id)
            remaining = deadline - _clock.monotonic()
            if (run.state is not None and run.state.is_final()) or remaining <= 0:
                return run
            if _clock.monotonic() >= next_check:
                next_check = _clock.monotonic() + self.heartbeat_seconds
                self.crash_zombies()
                continue
            _changes.wait(min(remaining, _POLL_SECONDS))

    def _poll_work(self, work_pool_name: str | None, poll: WorkerPoll) -> WorkerPollAnswer:
        deadline = _clock.monotonic() + poll.wait
        while True:
            answer = self.take_runs(work_pool_name, poll)
            remaining = deadline - _clock.monotonic()
            if answer.runs or answer.cancelling or remaining <= 0:
                return answer
            # Until something is due, look cheaply (a read) and often; a change made in
            # this process wakes the wait at once.
            while remaining > 0:
                _changes.wait(min(remaining, _POLL_SECONDS))
                if self.has_work(work_pool_name, poll):
                    break
                remaining = deadline - _clock.monotonic()
            if remaining <= 0:
                return answer

    def take_runs(self, work_pool_name: str | None, poll: WorkerPoll) -> WorkerPollAnswer:
        """One attempt of poll_work, without waiting (the server's long poll waits itself)."""
        arguments = {"work_pool_name": work_pool_name, "poll": poll}
        answer: WorkerPollAnswer = self.run(dispatch.take_runs, arguments, writes=True)
        return answer

    def has_work(self, work_pool_name: str | None, poll: WorkerPoll) -> bool:
        """Whether take_runs would find something now: a cheap read for long polls."""
        arguments = {"work_pool_name": work_pool_name, "poll": poll}
        return bool(self.run(dispatch.has_work, arguments, writes=False))

    def _backfill_deployment(
        self, deployment_id: uuid.UUID, start: datetime, end: datetime
    ) -> list[FlowRun]:
        times = self.run(
            schedules.plan_backfill,
            {"deployment_id": deployment_id, "start": start, "end": end},
            writes=False,
        )
        made: list[FlowRun] = []
        step = schedules.BACKFILL_RUNS_PER_TRANSACTION
        for i in range(0, len(times), step):
            # Short transactions: a long backfill must not stall the store's other writers.
            made += self.run(
                schedules.make_backfill_runs,
                {"deployment_id": deployment_id, "times": times[i : i + step]},
                writes=True,
            )
            _changes.notify()
        return made


@functools.cache
def _implementation(name: str) -> Callable[..., Any]:
    """The orchestration function an operation names as ``"module:function"``."""
    module, _, function = name.partition(":")
    found: Callable[..., Any] = getattr(
        importlib.import_module(f"anabranch.orchestration.{module}"), function
    )
    return found


@functools.cache
def _takes_now(function: Callable[..., Any]) -> bool:
    return "now" in inspect.signature(function).parameters


def _connection_lost(exc: sa.exc.DBAPIError) -> bool:
    """Whether trying again can help: the connection failed, or SQLite stayed locked."""
    if exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError):
        return True
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    if "sqlite" in type(exc.orig).__module__:
        return "locked" in str(exc.orig) or "busy" in str(exc.orig)
    return True
