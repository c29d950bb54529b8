"""Record batches of runs, states and logs, and read them back as schema objects.

``apply_batch`` is the hot path (every task run of every flow goes through it), so it
writes with one executemany per statement kind and never builds ORM objects. On SQLite it
goes further and builds the driver's rows itself (see "SQLite writer" below).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from anabranch import _clock
from anabranch.database.models import flow_run, log, run_state, task_run
from anabranch.database.types import sqlite_datetime_text
from anabranch.exceptions import AnabranchError, ObjectNotFound
from anabranch.schemas import (
    FlowRun,
    LogRecord,
    RecordBatch,
    State,
    StateRecord,
    StateType,
    TaskRun,
)

_INSERTS: dict[str, Callable[[sa.Table], Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}
# A run row's current state; also the order of the SQLite writer's state values.
_STATE_COLUMNS = (
    "state_id",
    "state_type",
    "state_name",
    "state_message",
    "state_timestamp",
    "result_ref",
)

_Run = TypeVar("_Run", FlowRun, TaskRun)


def apply_batch(conn: Connection, batch: RecordBatch) -> None:
    """Upsert the batch's run snapshots, add its new state transitions, append its log lines.

    Re-applying a batch changes no run and no state. A snapshot whose ``state`` is None
    keeps the stored state; one whose state is older than the stored one changes nothing,
    because writers in several processes may deliver snapshots out of order.
    """
    now = _clock.now()
    if conn.dialect.name == "sqlite":
        _apply_batch_sqlite(conn, batch, now)
    else:
        _apply_batch_sqlalchemy(conn, batch, now)


def read_flow_run(conn: Connection, flow_run_id: uuid.UUID) -> FlowRun:
    """One flow run; ObjectNotFound naming the id if there is none."""
    row = conn.execute(sa.select(flow_run).where(flow_run.c.id == flow_run_id)).mappings().first()
    if row is None:
        raise ObjectNotFound(
            f"No flow run with id {flow_run_id}; `anabranch flow-run ls` lists the flow runs."
        )
    return _flow_run(row)


def read_flow_runs(
    conn: Connection,
    *,
    limit: int | None = None,
    offset: int = 0,
    state_types: Sequence[StateType] | None = None,
    state_names: Sequence[str] | None = None,
    flow_name: str | None = None,
    parent_flow_run_id: uuid.UUID | None = None,
) -> list[FlowRun]:
    """Flow runs, newest first; state names match case-insensitively."""
    query = sa.select(flow_run)
    if state_types:
        query = query.where(flow_run.c.state_type.in_([StateType(t).value for t in state_types]))
    if state_names:
        names = [name.lower() for name in state_names]
        query = query.where(sa.func.lower(flow_run.c.state_name).in_(names))
    if flow_name is not None:
        query = query.where(flow_run.c.flow_name == flow_name)
    if parent_flow_run_id is not None:
        query = query.where(flow_run.c.parent_flow_run_id == parent_flow_run_id)
    query = query.order_by(flow_run.c.created.desc(), flow_run.c.id.desc())
    query = query.limit(limit).offset(offset)
    return [_flow_run(row) for row in conn.execute(query).mappings()]


def read_task_run(conn: Connection, task_run_id: uuid.UUID) -> TaskRun:
    """One task run; ObjectNotFound naming the id if there is none."""
    row = conn.execute(sa.select(task_run).where(task_run.c.id == task_run_id)).mappings().first()
    if row is None:
        raise ObjectNotFound(
            f"No task run with id {task_run_id}; `anabranch flow-run inspect FLOW_RUN_ID` "
            "lists a flow run's task runs."
        )
    return _task_run(row)


def read_task_runs(conn: Connection, *, flow_run_id: uuid.UUID | None = None) -> list[TaskRun]:
    """Task runs of one flow run (all when None), oldest first."""
    query = sa.select(task_run).order_by(task_run.c.created, task_run.c.id)
    if flow_run_id is not None:
        query = query.where(task_run.c.flow_run_id == flow_run_id)
    return [_task_run(row) for row in conn.execute(query).mappings()]


def read_states(conn: Connection, run_id: uuid.UUID) -> list[StateRecord]:
    """The state history of a flow or task run, oldest first (empty for an unknown id)."""
    query = (
        sa.select(run_state)
        .where(run_state.c.run_id == run_id)
        .order_by(run_state.c.timestamp, run_state.c.id)
    )
    return [
        StateRecord(
            run_id=row["run_id"],
            state=State(
                id=row["id"],
                type=row["type"],
                name=row["name"],
                message=row["message"],
                timestamp=row["timestamp"],
                result_ref=row["result_ref"],
            ),
        )
        for row in conn.execute(query).mappings()
    ]


def read_logs(
    conn: Connection,
    *,
    flow_run_id: uuid.UUID | None = None,
    task_run_id: uuid.UUID | None = None,
    limit: int | None = None,
) -> list[LogRecord]:
    """Log lines, oldest first: a flow run's (including its task runs') and/or a task run's."""
    query = sa.select(log).order_by(log.c.timestamp, log.c.id).limit(limit)
    if flow_run_id is not None:
        its_task_runs = sa.select(task_run.c.id).where(task_run.c.flow_run_id == flow_run_id)
        query = query.where(
            sa.or_(log.c.flow_run_id == flow_run_id, log.c.task_run_id.in_(its_task_runs))
        )
    if task_run_id is not None:
        query = query.where(log.c.task_run_id == task_run_id)
    return [
        LogRecord(
            flow_run_id=row["flow_run_id"],
            task_run_id=row["task_run_id"],
            name=row["name"],
            level=row["level"],
            message=row["message"],
            timestamp=row["timestamp"],
        )
        for row in conn.execute(query).mappings()
    ]


def _apply_batch_sqlalchemy(conn: Connection, batch: RecordBatch, now: datetime) -> None:
    """apply_batch on PostgreSQL: SQLAlchemy statements whose column types convert each value.

    On SQLite it writes the very rows _apply_batch_sqlite writes (a test holds them to it).
    """
    dialect = conn.dialect.name
    _upsert_runs(conn, dialect, flow_run, [_flow_run_row(r, now) for r in _latest(batch.flow_runs)])
    _upsert_runs(conn, dialect, task_run, [_task_run_row(r, now) for r in _latest(batch.task_runs)])
    if batch.states:
        conn.execute(_insert_new_states(dialect), [_state_row(s) for s in batch.states])
    if batch.logs:
        conn.execute(sa.insert(log), [_log_row(r) for r in batch.logs])


def _latest(runs: Iterable[_Run]) -> Iterable[_Run]:
    # One row per id, the last snapshot winning: a multi-row upsert may touch a row once only.
    return {run.id: run for run in runs}.values()


def _upsert_runs(conn: Connection, dialect: str, table: sa.Table, rows: list[dict]) -> None:
    # executemany needs the same keys in every row, and a snapshot without a state must not
    # clear the stored one, so the two kinds go in two statements.
    with_state = [row for row in rows if "state_id" in row]
    without_state = [row for row in rows if "state_id" not in row]
    if with_state:
        conn.execute(_upsert(dialect, table, with_state=True), with_state)
    if without_state:
        conn.execute(_upsert(dialect, table, with_state=False), without_state)


@functools.cache
def _upsert(dialect: str, table: sa.Table, *, with_state: bool) -> sa.Insert:
    stmt = _dialect_insert(dialect, table)
    skip = {"id", "created"} if with_state else {"id", "created", *_STATE_COLUMNS}
    excluded = stmt.excluded
    where = None
    if with_state:
        where = sa.or_(
            table.c.state_timestamp.is_(None),
            excluded.state_timestamp >= table.c.state_timestamp,
        )
    return stmt.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={column.name: excluded[column.name] for column in table.c if column.name not in skip},
        where=where,
    )


@functools.cache
def _insert_new_states(dialect: str) -> sa.Insert:
    return _dialect_insert(dialect, run_state).on_conflict_do_nothing(index_elements=["id"])


def _dialect_insert(dialect: str, table: sa.Table) -> Any:
    try:
        return _INSERTS[dialect](table)
    except KeyError:
        raise AnabranchError(
            f"anabranch stores runs in SQLite or PostgreSQL, not {dialect}; point "
            "ANABRANCH_DATABASE_URL at one of those."
        ) from None


def _run_row(run: FlowRun | TaskRun, now: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": run.id,
        "name": run.name,
        "parameters": run.parameters,
        "tags": run.tags,
        "run_count": run.run_count,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "created": run.created,
        "updated": now,
    }
    state = run.state
    if state is not None:
        row["state_id"] = state.id
        row["state_type"] = state.type.value
        row["state_name"] = state.name
        row["state_message"] = state.message
        row["state_timestamp"] = state.timestamp
        # The engine's JSON serializer (pydantic_core) writes the ResultRef model as is.
        row["result_ref"] = state.result_ref
    return row


def _flow_run_row(run: FlowRun, now: datetime) -> dict[str, Any]:
    row = _run_row(run, now)
    row["flow_name"] = run.flow_name
    row["flow_version"] = run.flow_version
    row["parent_flow_run_id"] = run.parent_flow_run_id
    row["parent_task_run_id"] = run.parent_task_run_id
    row["heartbeat"] = run.heartbeat
    return row


def _task_run_row(run: TaskRun, now: datetime) -> dict[str, Any]:
    row = _run_row(run, now)
    row["task_key"] = run.task_key
    row["flow_run_id"] = run.flow_run_id
    row["cache_key"] = run.cache_key
    return row


def _state_row(record: StateRecord) -> dict[str, Any]:
    state = record.state
    return {
        "id": state.id,
        "run_id": record.run_id,
        "type": state.type.value,
        "name": state.name,
        "message": state.message,
        "timestamp": state.timestamp,
        "result_ref": state.result_ref,
    }


def _log_row(record: LogRecord) -> dict[str, Any]:
    return {
        "flow_run_id": record.flow_run_id,
        "task_run_id": record.task_run_id,
        "name": record.name,
        "level": record.level,
        "message": record.message,
        "timestamp": record.timestamp,
    }


# SQLite writer
#
# SQLAlchemy's executemany passes every value through its column type's bind processor
# (Uuid, UTCDateTime, JSON); for 1,000 task runs and 3,000 states that took 44 ms, of which
# the driver's own executemany was 12. The writer runs on a thread of the user's process,
# where its CPU time is taken from the user's flow (the GIL), so on SQLite the rows are
# built here, already in the text SQLAlchemy stores, and handed to the driver's executemany
# (25 ms in all). Reads go through the tables' types as before, so they return the same
# objects:
#
#   Uuid         32 lowercase hex digits (uuid.hex), as sa.Uuid stores it without native UUIDs
#   UTCDateTime  sqlite_datetime_text, which is UTCDateTime's own SQLite bind processor
#   JSON         the engine's JSON serializer, which is what sa.JSON calls; a None result_ref
#                is SQL NULL (none_as_null), None parameters or tags would be 'null'


# The columns of a run row, in the order the SQLite writer's rows hold them: the ones every
# run has, then the flow or task run's own, then (for a snapshot with a state) _STATE_COLUMNS.
_RUN_COLUMNS = (
    "id",
    "name",
    "parameters",
    "tags",
    "run_count",
    "start_time",
    "end_time",
    "created",
    "updated",
)
_FLOW_RUN_COLUMNS = (
    "flow_name", "flow_version", "parent_flow_run_id", "parent_task_run_id", "heartbeat"
)
_TASK_RUN_COLUMNS = ("task_key", "flow_run_id", "cache_key")


def _apply_batch_sqlite(conn: Connection, batch: RecordBatch, now: datetime) -> None:
    """apply_batch on SQLite: the same statements and semantics, rows built in storage form."""
    dumps = conn.dialect._json_serializer or json.dumps
    updated = sqlite_datetime_text(now)
    _sqlite_upsert_runs(
        conn, "flow_run", _FLOW_RUN_COLUMNS, _latest(batch.flow_runs), _flow_run_own, dumps, updated
    )
    _sqlite_upsert_runs(
        conn, "task_run", _TASK_RUN_COLUMNS, _latest(batch.task_runs), _task_run_own, dumps, updated
    )
    _sqlite_insert_new_states(conn, batch.states, dumps)
    _sqlite_insert_logs(conn, batch.logs)


def _sqlite_upsert_runs(
    conn: Connection,
    table: str,
    own_columns: tuple[str, ...],
    runs: Iterable[_Run],
    own_values: Callable[[_Run], tuple[Any, ...]],
    dumps: Callable[[Any], str],
    updated: str | None,
) -> None:
    """Upsert run snapshots; rows hold _RUN_COLUMNS, then ``own_columns``, then the state.

    As on the SQLAlchemy path, snapshots with and without a state go in two statements: one
    without a state must not clear the stored state, so its row has no state columns.
    """
    with_state_sql = _sqlite_upsert_sql(table, own_columns, with_state=True)
    without_state_sql = _sqlite_upsert_sql(table, own_columns, with_state=False)
    with_state: list[tuple[Any, ...]] = []
    without_state: list[tuple[Any, ...]] = []
    with _as_statement_error(with_state_sql):
        for run in runs:
            row = (
                run.id.hex,
                run.name,
                dumps(run.parameters),
                dumps(run.tags),
                run.run_count,
                sqlite_datetime_text(run.start_time),
                sqlite_datetime_text(run.end_time),
                sqlite_datetime_text(run.created),
                updated,
            ) + own_values(run)
            state = run.state
            if state is None:
                without_state.append(row)
            else:
                with_state.append(row + _sqlite_state_values(state, dumps))
    if with_state:
        conn.exec_driver_sql(with_state_sql, with_state)
    if without_state:
        conn.exec_driver_sql(without_state_sql, without_state)


@functools.cache
def _sqlite_upsert_sql(table: str, own_columns: tuple[str, ...], *, with_state: bool) -> str:
    """The SQLAlchemy path's upsert (see _upsert) as SQLite text.

    The WHERE clause is what keeps a newer stored state: writers in several processes may
    deliver snapshots out of order, and an older one then changes nothing. Timestamps are
    fixed-width UTC text, so comparing the text compares the instants.
    """
    columns = _RUN_COLUMNS + own_columns + (_STATE_COLUMNS if with_state else ())
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in ("id", "created"))
    sql = f"{_sqlite_insert_sql(table, columns)} ON CONFLICT (id) DO UPDATE SET {updates}"
    if with_state:
        sql += (
            f" WHERE {table}.state_timestamp IS NULL"
            f" OR excluded.state_timestamp >= {table}.state_timestamp"
        )
    return sql


def _flow_run_own(run: FlowRun) -> tuple[Any, ...]:
    """A flow run's own columns (_FLOW_RUN_COLUMNS), in SQLite storage form."""
    return (
        run.flow_name,
        run.flow_version,
        _hex(run.parent_flow_run_id),
        _hex(run.parent_task_run_id),
        sqlite_datetime_text(run.heartbeat),
    )


def _task_run_own(run: TaskRun) -> tuple[Any, ...]:
    """A task run's own columns (_TASK_RUN_COLUMNS), in SQLite storage form."""
    return (run.task_key, _hex(run.flow_run_id), run.cache_key)


def _sqlite_state_values(state: State, dumps: Callable[[Any], str]) -> tuple[Any, ...]:
    """A state as the six values of _STATE_COLUMNS, in SQLite storage form.

    The same six, with the run id appended, make a run_state row (_SQLITE_STATE_COLUMNS).
    """
    ref = state.result_ref
    return (
        state.id.hex,
        state.type.value,
        state.name,
        state.message,
        sqlite_datetime_text(state.timestamp),
        None if ref is None else dumps(ref),
    )


def _sqlite_insert_new_states(
    conn: Connection, records: Sequence[StateRecord], dumps: Callable[[Any], str]
) -> None:
    """Add state transitions; one whose id is stored already is skipped, so re-sending a
    batch (a retried write) adds nothing."""
    if not records:
        return
    with _as_statement_error(_SQLITE_INSERT_STATE):
        rows = [_sqlite_state_values(r.state, dumps) + (r.run_id.hex,) for r in records]
    conn.exec_driver_sql(_SQLITE_INSERT_STATE, rows)


def _sqlite_insert_logs(conn: Connection, records: Sequence[LogRecord]) -> None:
    """Append log lines (they have no id of their own: the table numbers them)."""
    if not records:
        return
    with _as_statement_error(_SQLITE_INSERT_LOG):
        rows = [
            (
                _hex(r.flow_run_id),
                _hex(r.task_run_id),
                r.name,
                r.level,
                r.message,
                sqlite_datetime_text(r.timestamp),
            )
            for r in records
        ]
    conn.exec_driver_sql(_SQLITE_INSERT_LOG, rows)


def _sqlite_insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


# A run_state row is a state's _STATE_COLUMNS values plus its run id, in this order.
_SQLITE_STATE_COLUMNS = ("id", "type", "name", "message", "timestamp", "result_ref", "run_id")
_SQLITE_INSERT_STATE = (
    _sqlite_insert_sql("run_state", _SQLITE_STATE_COLUMNS) + " ON CONFLICT (id) DO NOTHING"
)
_SQLITE_LOG_COLUMNS = ("flow_run_id", "task_run_id", "name", "level", "message", "timestamp")
_SQLITE_INSERT_LOG = _sqlite_insert_sql("log", _SQLITE_LOG_COLUMNS)


def _hex(value: uuid.UUID | None) -> str | None:
    return None if value is None else value.hex


@contextmanager
def _as_statement_error(sql: str) -> Iterator[None]:
    """Raise what SQLAlchemy raised when one of its bind processors refused a value (a naive
    datetime, something the JSON serializer can not write): a StatementError naming the
    statement, with the original error as ``orig``."""
    try:
        yield
    except Exception as exc:
        message = f"({type(exc).__module__}.{type(exc).__name__}) {exc}"
        raise sa.exc.StatementError(message, sql, None, exc) from exc


def _run_fields(row: RowMapping) -> dict[str, Any]:
    state = None
    if row["state_id"] is not None:
        state = State(
            id=row["state_id"],
            type=row["state_type"],
            name=row["state_name"],
            message=row["state_message"],
            timestamp=row["state_timestamp"],
            result_ref=row["result_ref"],
        )
    return {
        "id": row["id"],
        "name": row["name"],
        "parameters": row["parameters"],
        "tags": row["tags"],
        "state": state,
        "run_count": row["run_count"],
        "start_time": row["start_time"],
        "end_time": row["end_time"],
        "created": row["created"],
    }


def _flow_run(row: RowMapping) -> FlowRun:
    return FlowRun(
        **_run_fields(row),
        flow_name=row["flow_name"],
        flow_version=row["flow_version"],
        parent_flow_run_id=row["parent_flow_run_id"],
        parent_task_run_id=row["parent_task_run_id"],
        heartbeat=row["heartbeat"],
    )


def _task_run(row: RowMapping) -> TaskRun:
    return TaskRun(
        **_run_fields(row),
        task_key=row["task_key"],
        flow_run_id=row["flow_run_id"],
        cache_key=row["cache_key"],
    )
