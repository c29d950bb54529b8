"""The in-process transport: the client calls the orchestration functions on a local database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from anabranch.database import get_engine, upgrade, write_transaction
from anabranch.orchestration import runs
from anabranch.schemas import FlowRun, LogRecord, RecordBatch, StateRecord, StateType, TaskRun


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

    def close(self) -> None:
        """Nothing to release: connections belong to the engine shared by the whole process."""

    def __enter__(self) -> EmbeddedClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None

    def _connect(self) -> Any:
        # Looked up per call rather than kept: after a fork, get_engine hands the child its own.
        return get_engine(self.database_url).connect()
