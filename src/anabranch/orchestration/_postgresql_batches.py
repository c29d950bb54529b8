"""The PostgreSQL batch writer: each statement's rows sent as one JSON document.

Through SQLAlchemy's executemany, psycopg sends one Bind/Execute message per row and
SQLAlchemy converts every value by its column type: for 1,000 task runs and 3,000 states
that was ~100 ms of the server's CPU, most of what a batch cost it. Here each statement is
sent once, its rows as one JSON array that the engine's JSON serializer writes in one call
(pydantic-core: UUIDs, datetimes and result refs included), and json_to_recordset() turns
it back into typed rows inside PostgreSQL (~40 ms in all, half of it PostgreSQL's own).

The statements, ON CONFLICT clauses and guards are those of the SQLAlchemy path in ``runs``,
and so are the stored values (a test holds them to it): a JSON column gets the JSON value, a
JSON null becomes SQL NULL (result_ref's none_as_null), and datetimes are put in UTC as
UTCDateTime puts them, refusing a naive one (PostgreSQL would read it in the session's time
zone) and one whose UTC instant Python can not hold (it could not be read back).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from anabranch.database.models import flow_run, log, run_state, task_run
from anabranch.database.types import UTCDateTime
from anabranch.orchestration._batch_rules import (
    FLOW_RUN_COLUMNS,
    RUN_COLUMNS,
    STATE_COLUMNS,
    TASK_RUN_COLUMNS,
    Refusal,
    Run,
    as_statement_error,
    latest,
    not_refused,
    refusals,
    state_guard_sql,
)
from anabranch.schemas import RecordBatch, State


def apply_batch_postgresql(conn: Connection, batch: RecordBatch, now: datetime) -> list[Refusal]:
    """apply_batch on PostgreSQL: the same statements and semantics, rows sent as JSON."""
    dumps = conn.dialect._json_serializer or json.dumps
    refused = _upsert_runs(conn, flow_run, latest(batch.flow_runs), dumps, now)
    refused += _upsert_runs(conn, task_run, latest(batch.task_runs), dumps, now)
    states = not_refused(batch.states, refused)
    if states:
        rows = [_state_row(record.state, record.run_id) for record in states]
        _execute(conn, _insert(run_state, _STATE_ROW, "(id) DO NOTHING"), rows, dumps)
    if batch.logs:
        rows = [
            {
                "record_id": r.id,
                "flow_run_id": r.flow_run_id,
                "task_run_id": r.task_run_id,
                "name": r.name,
                "level": r.level,
                "message": r.message,
                "timestamp": r.timestamp,
            }
            for r in batch.logs
        ]
        _execute(conn, _insert(log, _LOG_ROW, "(record_id) DO NOTHING"), rows, dumps)
    return refused


# The columns of the state and log rows.
_STATE_ROW = ("id", "run_id", "type", "name", "message", "timestamp", "result_ref")
_LOG_ROW = ("record_id", "flow_run_id", "task_run_id", "name", "level", "message", "timestamp")
_ZERO = timedelta(0)
_TO_UTC = UTCDateTime()


def _upsert_runs(
    conn: Connection,
    table: sa.Table,
    runs: list[Run],
    dumps: Callable[[Any], str],
    now: datetime,
) -> list[Refusal]:
    """Upsert run snapshots, with and without a state in two statements (as on SQLite);
    returns the snapshots refused for breaking the state rule."""
    own_columns = FLOW_RUN_COLUMNS if table is flow_run else TASK_RUN_COLUMNS
    with_state: list[dict[str, Any]] = []
    without_state: list[dict[str, Any]] = []
    for run in runs:
        fields = vars(run)
        row = {column: fields[column] for column in own_columns}
        row["id"] = run.id
        row["name"] = run.name
        row["parameters"] = run.parameters
        row["tags"] = run.tags
        row["run_count"] = run.run_count
        row["start_time"] = run.start_time
        row["end_time"] = run.end_time
        row["created"] = run.created
        row["updated"] = now
        state = run.state
        if state is None:
            without_state.append(row)
        else:
            row["state_id"] = state.id
            row["state_type"] = state.type  # a str enum: the serializer writes its value
            row["state_name"] = state.name
            row["state_message"] = state.message
            row["state_timestamp"] = state.timestamp
            row["result_ref"] = state.result_ref
            with_state.append(row)
    refused: list[Refusal] = []
    if with_state:
        upsert = _upsert(table, own_columns, with_state=True)
        # Every row inserts or updates one row, unless the WHERE guard kept it out.
        if _execute(conn, upsert, with_state, dumps) != len(with_state):
            refused = refusals(conn, table, [run for run in runs if run.state is not None])
    if without_state:
        _execute(conn, _upsert(table, own_columns, with_state=False), without_state, dumps)
    return refused


def _state_row(state: State, run_id: uuid.UUID) -> dict[str, Any]:
    return {
        "id": state.id,
        "run_id": run_id,
        "type": state.type,
        "name": state.name,
        "message": state.message,
        "timestamp": state.timestamp,
        "result_ref": state.result_ref,
    }


@functools.cache
def _upsert(table: sa.Table, own_columns: tuple[str, ...], *, with_state: bool) -> _Statement:
    """The SQLAlchemy path's upsert, reading its rows from JSON, under state_guard_sql."""
    columns = RUN_COLUMNS + own_columns + (STATE_COLUMNS if with_state else ())
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in ("id", "created"))
    guard = f" WHERE {state_guard_sql(table.name)}" if with_state else ""
    return _insert(table, columns, f"(id) DO UPDATE SET {updates}{guard}")


@dataclass(frozen=True)
class _Statement:
    """An INSERT reading its rows from one JSON parameter, and its rows' timestamp fields."""

    sql: str
    timestamps: tuple[str, ...]


@functools.cache
def _insert(table: sa.Table, columns: tuple[str, ...], on_conflict: str) -> _Statement:
    """INSERT of ``columns`` from a JSON array of rows, each field typed as its column is."""
    dialect = postgresql.dialect()
    types = ", ".join(f"{name} {table.c[name].type.compile(dialect=dialect)}" for name in columns)
    names = ", ".join(columns)
    return _Statement(
        f"INSERT INTO {table.name} ({names}) SELECT {names}"
        f" FROM json_to_recordset(%s::json) AS row({types}) ON CONFLICT {on_conflict}",
        tuple(name for name in columns if isinstance(table.c[name].type, UTCDateTime)),
    )


def _execute(
    conn: Connection,
    statement: _Statement,
    rows: list[dict[str, Any]],
    dumps: Callable[[Any], str],
) -> int:
    """Send ``rows`` as one JSON parameter; returns how many rows were written."""
    with as_statement_error(statement.sql):
        for column in statement.timestamps:
            for row in rows:
                value = row[column]
                if (
                    value is not None
                    and value.tzinfo is not timezone.utc
                    and value.utcoffset() != _ZERO  # None when naive
                ):
                    row[column] = _TO_UTC.process_bind_param(value, conn.dialect)
        payload = dumps(rows)
    return int(conn.exec_driver_sql(statement.sql, (payload,)).rowcount)
