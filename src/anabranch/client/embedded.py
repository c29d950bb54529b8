"""The in-process transport: the client calls the orchestration functions on a local database.

A call that fails because the database connection failed (PostgreSQL restarted or a
connection cut, SQLite locked past its busy timeout) is run again, whole, with back-off for
ANABRANCH_CLIENT_RETRY_SECONDS: each call is one transaction, rolled back when it fails,
and the writes that could be left half-answered (slots, deployment runs) are idempotent.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from anabranch import _clock
from anabranch._redact import mask_passwords
from anabranch.client._changes import changes as _changes
from anabranch.database import get_engine, upgrade, write_transaction
from anabranch.exceptions import InvalidStateTransition, StoreUnavailable
from anabranch.orchestration import (
    concurrency,
    deployments,
    late_runs,
    run_control,
    runs,
    schedules,
    work_pools,
    zombies,
)
from anabranch.schemas import (
    ConcurrencyLimit,
    FlowRun,
    LogRecord,
    RecordBatch,
    SlotGrant,
    SlotRequest,
    StateRecord,
    StateType,
    TaskRun,
)
from anabranch.schemas.deployments import (
    Deployment,
    DeploymentRunRequest,
    Worker,
    WorkerPoll,
    WorkerPollAnswer,
    WorkPool,
    WorkQueue,
)
from anabranch.schemas.unset import UNSET
from anabranch.settings import get_settings

# How often long waits (a worker's poll, run_deployment's wait) look at the database.
_POLL_SECONDS = 0.05

C = TypeVar("C", bound=type)


def _retry_lost_connections(cls: C) -> C:
    """Give every public method of ``cls`` the retry of lost database connections."""
    for name, method in list(vars(cls).items()):
        if callable(method) and not name.startswith("_"):
            setattr(cls, name, _retried(method))
    return cls


def _retried(method: Any) -> Any:
    @functools.wraps(method)
    def call(self: EmbeddedClient, *args: Any, **kwargs: Any) -> Any:
        backoff: _clock.Backoff | None = None
        while True:
            try:
                return method(self, *args, **kwargs)
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

    return call


def _connection_lost(exc: sa.exc.DBAPIError) -> bool:
    """Whether trying again can help: the connection failed, or SQLite stayed locked."""
    if exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError):
        return True
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    if "sqlite" in type(exc.orig).__module__:
        return "locked" in str(exc.orig) or "busy" in str(exc.orig)
    return True


@_retry_lost_connections
class EmbeddedClient:
    """An AnabranchClient over the database at ``database_url`` (SQLite or PostgreSQL).

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

    def write_batch(self, batch: RecordBatch) -> None:
        if not batch:
            return
        with write_transaction(self.database_url) as conn:
            refused = runs.apply_batch(conn, batch)
        ended = [r.id for r in batch.flow_runs if r.state is not None and r.state.is_final()]
        if ended:
            # Waiters on these runs, and workers whose pool they free, look again now.
            _changes.notify(ended)
        if refused:
            # Raised after the commit: the rest of the batch is stored.
            raise InvalidStateTransition.of(refused)

    def read_flow_run(self, flow_run_id: uuid.UUID) -> FlowRun:
        with self._connect() as conn:
            return runs.read_flow_run(conn, flow_run_id)

    def read_flow_runs(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        state_types: Sequence[StateType] | None = None,
        state_names: Sequence[str] | None = None,
        flow_name: str | None = None,
        parent_flow_run_id: uuid.UUID | None = None,
        tags: Sequence[str] | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[FlowRun]:
        with self._connect() as conn:
            return runs.read_flow_runs(
                conn,
                limit=limit,
                offset=offset,
                state_types=state_types,
                state_names=state_names,
                flow_name=flow_name,
                parent_flow_run_id=parent_flow_run_id,
                tags=tags,
                started_after=started_after,
                started_before=started_before,
                created_after=created_after,
                created_before=created_before,
            )

    def read_task_runs(self, *, flow_run_id: uuid.UUID | None = None) -> list[TaskRun]:
        with self._connect() as conn:
            return runs.read_task_runs(conn, flow_run_id=flow_run_id)

    def read_task_run(self, task_run_id: uuid.UUID) -> TaskRun:
        with self._connect() as conn:
            return runs.read_task_run(conn, task_run_id)

    def read_states(self, run_id: uuid.UUID) -> list[StateRecord]:
        with self._connect() as conn:
            return runs.read_states(conn, run_id)

    def read_logs(
        self,
        *,
        flow_run_id: uuid.UUID | None = None,
        task_run_id: uuid.UUID | None = None,
        limit: int | None = None,
    ) -> list[LogRecord]:
        with self._connect() as conn:
            return runs.read_logs(
                conn, flow_run_id=flow_run_id, task_run_id=task_run_id, limit=limit
            )

    def create_concurrency_limit(
        self,
        name: str,
        limit: int,
        *,
        active: bool = True,
        slot_decay_per_second: float | None = None,
    ) -> ConcurrencyLimit:
        with write_transaction(self.database_url) as conn:
            return concurrency.create_limit(
                conn, name, limit, active=active,
                slot_decay_per_second=slot_decay_per_second, now=_clock.now(),
            )

    def read_concurrency_limit(self, name: str) -> ConcurrencyLimit:
        with self._connect() as conn:
            return concurrency.read_limit(conn, name, now=_clock.now())

    def read_concurrency_limits(self) -> list[ConcurrencyLimit]:
        with self._connect() as conn:
            return concurrency.read_limits(conn, now=_clock.now())

    def update_concurrency_limit(
        self,
        name: str,
        *,
        limit: int | None = None,
        active: bool | None = None,
        slot_decay_per_second: float | None = None,
    ) -> ConcurrencyLimit:
        with write_transaction(self.database_url) as conn:
            return concurrency.update_limit(
                conn, name, limit=limit, active=active,
                slot_decay_per_second=slot_decay_per_second, now=_clock.now(),
            )

    def reset_concurrency_limit(self, name: str) -> ConcurrencyLimit:
        with write_transaction(self.database_url) as conn:
            return concurrency.reset_limit(conn, name, now=_clock.now())

    def delete_concurrency_limit(self, name: str) -> None:
        with write_transaction(self.database_url) as conn:
            concurrency.delete_limit(conn, name)

    def acquire_concurrency_slots(self, requests: Sequence[SlotRequest]) -> list[SlotGrant]:
        with write_transaction(self.database_url) as conn:
            return concurrency.acquire(conn, requests, now=_clock.now())

    def release_concurrency_slots(self, lease_id: uuid.UUID) -> bool:
        with write_transaction(self.database_url) as conn:
            return concurrency.release(conn, lease_id)

    def renew_concurrency_leases(
        self, lease_ids: Sequence[uuid.UUID], seconds: float
    ) -> list[uuid.UUID]:
        with write_transaction(self.database_url) as conn:
            return concurrency.renew(conn, lease_ids, seconds=seconds, now=_clock.now())

    def withdraw_concurrency_waiter(self, waiter_id: uuid.UUID) -> None:
        with write_transaction(self.database_url) as conn:
            concurrency.withdraw(conn, waiter_id)

    def reap_concurrency_leases(self) -> int:
        with write_transaction(self.database_url) as conn:
            return concurrency.reap(conn, now=_clock.now())

    # Deployments and their runs

    def save_deployment(self, deployment: Deployment) -> Deployment:
        with write_transaction(self.database_url) as conn:
            return schedules.save_deployment(conn, deployment, now=_clock.now())

    def read_deployment(self, deployment_id: uuid.UUID) -> Deployment:
        with self._connect() as conn:
            return deployments.read_deployment(conn, deployment_id)

    def read_deployment_by_name(self, name: str) -> Deployment:
        with self._connect() as conn:
            return deployments.read_deployment_by_name(conn, name)

    def read_deployments(
        self, *, flow_name: str | None = None, work_pool_name: str | None = None
    ) -> list[Deployment]:
        with self._connect() as conn:
            return deployments.read_deployments(
                conn, flow_name=flow_name, work_pool_name=work_pool_name
            )

    def set_deployment_paused(self, deployment_id: uuid.UUID, paused: bool) -> Deployment:
        with write_transaction(self.database_url) as conn:
            return schedules.set_deployment_paused(conn, deployment_id, paused, now=_clock.now())

    def delete_deployment(self, deployment_id: uuid.UUID) -> None:
        with write_transaction(self.database_url) as conn:
            deployments.delete_deployment(conn, deployment_id, now=_clock.now())

    def create_flow_run_from_deployment(
        self, deployment_id: uuid.UUID, request: DeploymentRunRequest | None = None
    ) -> FlowRun:
        with write_transaction(self.database_url) as conn:
            run = deployments.create_deployment_run(
                conn, deployment_id, request or DeploymentRunRequest(), now=_clock.now()
            )
        _changes.notify()
        return run

    def cancel_flow_run(
        self, flow_run_id: uuid.UUID, *, descendants: bool = False
    ) -> list[uuid.UUID]:
        with write_transaction(self.database_url) as conn:
            changed = run_control.cancel_flow_run(
                conn, flow_run_id, descendants=descendants, now=_clock.now()
            )
        _changes.notify(changed)
        return changed

    def claim_flow_run(
        self, flow_run_id: uuid.UUID, *, process_id: int, worker_name: str | None = None
    ) -> bool:
        with write_transaction(self.database_url) as conn:
            return run_control.claim_flow_run(
                conn, flow_run_id, process_id=process_id, worker_name=worker_name,
                now=_clock.now(),
            )

    def report_process_exit(
        self, flow_run_id: uuid.UUID, exit_code: int, *, worker_name: str | None = None
    ) -> None:
        with write_transaction(self.database_url) as conn:
            run_control.report_process_exit(
                conn, flow_run_id, exit_code, now=_clock.now(), worker_name=worker_name
            )
        _changes.notify([flow_run_id])

    def wait_for_flow_run(self, flow_run_id: uuid.UUID, timeout: float) -> FlowRun:
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

    def crash_zombies(self) -> list[uuid.UUID]:
        """Crash the runs whose process stopped heartbeating and free their slots (see
        ``orchestration.zombies``); what the server's services do, for the embedded store."""
        with write_transaction(self.database_url) as conn:
            return zombies.crash_zombies(
                conn, now=_clock.now(), silent_for=zombies.silence_limit(self.heartbeat_seconds)
            )

    # Work pools, queues and workers

    def create_work_pool(
        self,
        name: str,
        *,
        type: str = "process",
        concurrency_limit: int | None = None,
        description: str | None = None,
    ) -> WorkPool:
        with write_transaction(self.database_url) as conn:
            return work_pools.create_work_pool(
                conn, name, type=type, concurrency_limit=concurrency_limit,
                description=description, now=_clock.now(),
            )

    def read_work_pool(self, name: str) -> WorkPool:
        with self._connect() as conn:
            return work_pools.read_work_pool(conn, name, now=_clock.now())

    def read_work_pools(self) -> list[WorkPool]:
        with self._connect() as conn:
            return work_pools.read_work_pools(conn, now=_clock.now())

    def update_work_pool(
        self, name: str, *, concurrency_limit: Any = UNSET, paused: bool | None = None
    ) -> WorkPool:
        with write_transaction(self.database_url) as conn:
            pool = work_pools.update_work_pool(
                conn, name, concurrency_limit=concurrency_limit, paused=paused, now=_clock.now()
            )
        _changes.notify()
        return pool

    def delete_work_pool(self, name: str) -> None:
        with write_transaction(self.database_url) as conn:
            work_pools.delete_work_pool(conn, name)

    def create_work_queue(
        self,
        name: str,
        *,
        work_pool_name: str,
        priority: int | None = None,
        concurrency_limit: int | None = None,
        description: str | None = None,
    ) -> WorkQueue:
        with write_transaction(self.database_url) as conn:
            return work_pools.create_work_queue(
                conn, work_pool_name, name, priority=priority,
                concurrency_limit=concurrency_limit, description=description, now=_clock.now(),
            )

    def read_work_queue(self, name: str, *, work_pool_name: str) -> WorkQueue:
        with self._connect() as conn:
            return work_pools.read_work_queue(conn, work_pool_name, name)

    def read_work_queues(self, *, work_pool_name: str | None = None) -> list[WorkQueue]:
        with self._connect() as conn:
            return work_pools.read_work_queues(conn, work_pool_name)

    def update_work_queue(
        self,
        name: str,
        *,
        work_pool_name: str,
        concurrency_limit: Any = UNSET,
        priority: int | None = None,
        paused: bool | None = None,
    ) -> WorkQueue:
        with write_transaction(self.database_url) as conn:
            queue = work_pools.update_work_queue(
                conn, work_pool_name, name, concurrency_limit=concurrency_limit,
                priority=priority, paused=paused, now=_clock.now(),
            )
        _changes.notify()
        return queue

    def delete_work_queue(self, name: str, *, work_pool_name: str) -> None:
        with write_transaction(self.database_url) as conn:
            work_pools.delete_work_queue(conn, work_pool_name, name)

    def read_workers(self, work_pool_name: str) -> list[Worker]:
        with self._connect() as conn:
            return work_pools.read_workers(conn, work_pool_name, now=_clock.now())

    def poll_work(self, work_pool_name: str | None, poll: WorkerPoll) -> WorkerPollAnswer:
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
        with write_transaction(self.database_url) as conn:
            return work_pools.take_runs(conn, work_pool_name, poll, now=_clock.now())

    def has_work(self, work_pool_name: str | None, poll: WorkerPoll) -> bool:
        """Whether take_runs would find something now: a cheap read for long polls."""
        with self._connect() as conn:
            return work_pools.has_work(conn, work_pool_name, poll, now=_clock.now())

    def close(self) -> None:
        """Nothing to release: connections belong to the engine shared by the whole process."""

    def __enter__(self) -> EmbeddedClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None

    def _connect(self) -> Any:
        # Looked up per call rather than kept: after a fork, get_engine hands the child its own.
        return get_engine(self.database_url).connect()

    # Schedules

    def backfill_deployment(
        self, deployment_id: uuid.UUID, *, start: datetime, end: datetime
    ) -> list[FlowRun]:
        with self._connect() as conn:
            times = schedules.plan_backfill(conn, deployment_id, start=start, end=end)
        made: list[FlowRun] = []
        step = schedules.BACKFILL_RUNS_PER_TRANSACTION
        for i in range(0, len(times), step):
            # Short transactions: a long backfill must not stall the store's other writers.
            with write_transaction(self.database_url) as conn:
                made += schedules.make_backfill_runs(
                    conn, deployment_id, times[i : i + step], now=_clock.now()
                )
            _changes.notify()
        return made

    def schedule_runs(self) -> int:
        with write_transaction(self.database_url) as conn:
            now = _clock.now()
            made = schedules.schedule_runs(conn, now=now)
            late_runs.mark_late(conn, now=now)
        _changes.notify()
        return made
