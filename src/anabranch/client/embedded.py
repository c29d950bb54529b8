"""The in-process transport: the client calls the orchestration functions on a local database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from anabranch import _clock
from anabranch.database import get_engine, upgrade, write_transaction
from anabranch.orchestration import concurrency, runs
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


class EmbeddedClient:
    """An AnabranchClient over the database at ``database_url`` (SQLite or PostgreSQL).

    Opening migrates the database to the newest schema (once per process per URL). The
    client holds no connection of its own: each call borrows one from the URL's shared
    engine, so one client may be used from any number of threads, and it is cheap to make.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        upgrade(database_url)

    def __repr__(self) -> str:
        return f"EmbeddedClient({self.database_url!r})"

    def write_batch(self, batch: RecordBatch) -> None:
        if not batch:
            return
        with write_transaction(self.database_url) as conn:
            runs.apply_batch(conn, batch)

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

    def close(self) -> None:
        """Nothing to release: connections belong to the engine shared by the whole process."""

    def __enter__(self) -> EmbeddedClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None

    def _connect(self) -> Any:
        # Looked up per call rather than kept: after a fork, get_engine hands the child its own.
        return get_engine(self.database_url).connect()
