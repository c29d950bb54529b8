"""Record batches of runs, states and logs, and read them back as schema objects.

``apply_batch`` is the hot path (every task run of every flow goes through it), so it
never builds ORM objects, nor even lets SQLAlchemy convert each value: the SQLite writer
(``_sqlite_batches``) builds the driver's rows itself and the PostgreSQL writer
(``_postgresql_batches``) sends each statement's rows as one JSON document. The plain
SQLAlchemy statements here are the reference both are tested against; the guard all three
upsert under, with the state rule, is in ``_batch_rules``.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, RowMapping

from anabranch import _clock
from anabranch.database.models import (
    DEPLOYMENT_RUN_COLUMNS,
    flow_run,
    log,
    run_state,
    task_run,
)
from anabranch.database.upserts import upsert_into
from anabranch.exceptions import InvalidStateTransition, ObjectNotFound
from anabranch.orchestration._batch_rules import (
    STATE_COLUMNS,
    Refusal,
    Run,
    latest,
    not_refused,
    refusals,
    state_guard_sql,
)
from anabranch.orchestration._postgresql_batches import apply_batch_postgresql
from anabranch.orchestration._sqlite_batches import apply_batch_sqlite
from anabranch.schemas import (
    FlowRun,
    LogRecord,
    RecordBatch,
    State,
    StateRecord,
    StateType,
    TaskRun,
)
from anabranch.schemas.text import storable_batch


def apply_batch(conn: Connection, batch: RecordBatch) -> list[Refusal]:
    """Upsert the batch's run snapshots, add its new state transitions, append its log lines.

    Re-applying a batch changes no run, no state and no log line. A snapshot whose ``state``
    is None keeps the stored state; one whose state is older than the stored one changes
    nothing, because writers in several processes may deliver snapshots out of order.

    A newer snapshot whose state breaks the state rule (``transitions.refusal``: a final run
    stays final, a Cancelling run may only become Cancelled) is not applied, nor are the
    batch's state records of that run; everything else in the batch is. Returns those runs
    with the rule each broke. Re-sending the stored state itself (same state id) is no
    refusal. Text a database could not store is replaced first (``_text``).
    """
    now = _clock.now()
    batch = storable_batch(batch)
    if conn.dialect.name == "sqlite":
        return apply_batch_sqlite(conn, batch, now)
    if conn.dialect.name == "postgresql":
        return apply_batch_postgresql(conn, batch, now)
    return _apply_batch_sqlalchemy(conn, batch, now)


def write_batch(conn: Connection, batch: RecordBatch) -> None:
    """``apply_batch``, then InvalidStateTransition naming the refused runs, if any: an error
    that keeps the rest of the batch (``keeps_the_rest``), stored all the same."""
    refused = apply_batch(conn, batch)
    if refused:
        raise InvalidStateTransition.of(refused)


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
    tags: Sequence[str] | None = None,
    started_after: datetime | None = None,
    started_before: datetime | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    root_only: bool = False,
    deployment_id: uuid.UUID | None = None,
    work_pool_name: str | None = None,
    name_contains: str | None = None,
    failed_first: bool = False,
    id_prefix: str | None = None,
) -> list[FlowRun]:
    """Flow runs, newest first (failed and crashed ones before the rest with
    ``failed_first``); state names match case-insensitively, ``tags`` keeps the runs that
    have every one of them, ``name_contains`` matches any case, and the time bounds
    (timezone-aware; ValueError naming the bound otherwise) include their ends. A run that
    has not started yet matches no start bound."""
    query = sa.select(flow_run)
    if root_only:
        query = query.where(flow_run.c.parent_flow_run_id.is_(None))
    if deployment_id is not None:
        query = query.where(flow_run.c.deployment_id == deployment_id)
    if work_pool_name is not None:
        query = query.where(flow_run.c.work_pool_name == work_pool_name)
    if name_contains:
        query = query.where(flow_run.c.name.icontains(name_contains, autoescape=True))
    if id_prefix is not None:
        query = query.where(_id_starts_with(conn.dialect.name, id_prefix))
    bounds = (
        ("started_after", started_after, flow_run.c.start_time.__ge__),
        ("started_before", started_before, flow_run.c.start_time.__le__),
        ("created_after", created_after, flow_run.c.created.__ge__),
        ("created_before", created_before, flow_run.c.created.__le__),
    )
    for name, bound, compare in bounds:
        if bound is not None:
            query = query.where(compare(_clock.require_aware(bound, name)))
    if tags:
        query = query.where(*_having_tags(conn.dialect.name, tags))
    if state_types:
        query = query.where(flow_run.c.state_type.in_([StateType(t).value for t in state_types]))
    if state_names:
        names = [name.lower() for name in state_names]
        query = query.where(sa.func.lower(flow_run.c.state_name).in_(names))
    if flow_name is not None:
        query = query.where(flow_run.c.flow_name == flow_name)
    if parent_flow_run_id is not None:
        query = query.where(flow_run.c.parent_flow_run_id == parent_flow_run_id)
    order: list[sa.ColumnElement[Any]] = [flow_run.c.created.desc(), flow_run.c.id.desc()]
    if failed_first:
        order.insert(0, _failed_first(flow_run))
    query = query.order_by(*order).limit(limit).offset(offset)
    return [_flow_run(row) for row in conn.execute(query).mappings()]


def _id_starts_with(dialect: str, prefix: str) -> sa.ColumnElement[bool]:
    """Runs whose id, as hex digits, starts with ``prefix`` (hyphens and case ignored)."""
    digits = prefix.replace("-", "").lower()
    if not digits or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"{prefix!r} is not the start of a run id (hex digits and hyphens).")
    hex_id: sa.ColumnElement[str]
    if dialect == "postgresql":
        hex_id = sa.func.replace(sa.cast(flow_run.c.id, sa.Text), "-", "")
    else:
        hex_id = sa.cast(flow_run.c.id, sa.Text)  # stored as 32 hex digits
    return hex_id.startswith(digits)


def _failed_first(table: sa.Table) -> sa.ColumnElement[int]:
    """Sorts failed and crashed runs before the rest."""
    failed = [StateType.FAILED.value, StateType.CRASHED.value]
    return sa.case((table.c.state_type.in_(failed), 0), else_=1)


def _having_tags(dialect: str, tags: Sequence[str]) -> list[sa.ColumnElement[bool]]:
    """Conditions keeping the flow runs whose JSON ``tags`` list holds every one of ``tags``:
    JSONB containment on PostgreSQL (one condition), one json_each() lookup per tag on
    SQLite."""
    wanted = list(dict.fromkeys(tags))
    if dialect == "postgresql":
        return [sa.type_coerce(flow_run.c.tags, postgresql.JSONB).contains(wanted)]
    conditions: list[sa.ColumnElement[bool]] = []
    for tag in wanted:
        element = sa.func.json_each(flow_run.c.tags).table_valued("value")
        conditions.append(sa.exists().select_from(element).where(element.c.value == tag))
    return conditions


def read_task_run(conn: Connection, task_run_id: uuid.UUID) -> TaskRun:
    """One task run; ObjectNotFound naming the id if there is none."""
    row = conn.execute(sa.select(task_run).where(task_run.c.id == task_run_id)).mappings().first()
    if row is None:
        raise ObjectNotFound(
            f"No task run with id {task_run_id}; `anabranch flow-run inspect FLOW_RUN_ID` "
            "lists a flow run's task runs."
        )
    return _task_run(row)


def read_task_runs(
    conn: Connection,
    *,
    flow_run_id: uuid.UUID | None = None,
    limit: int | None = None,
    offset: int = 0,
    state_types: Sequence[StateType] | None = None,
    failed_first: bool = False,
) -> list[TaskRun]:
    """Task runs of one flow run (all when None), oldest first (failed and crashed ones
    first with ``failed_first``)."""
    order: list[sa.ColumnElement[Any]] = [task_run.c.created, task_run.c.id]
    if failed_first:
        order.insert(0, _failed_first(task_run))
    query = sa.select(task_run).order_by(*order).limit(limit).offset(offset)
    if flow_run_id is not None:
        query = query.where(task_run.c.flow_run_id == flow_run_id)
    if state_types:
        query = query.where(task_run.c.state_type.in_([StateType(t).value for t in state_types]))
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
    offset: int = 0,
    min_level: int = 0,
    text: str | None = None,
    include_subflows: bool = False,
    newest_first: bool = False,
) -> list[LogRecord]:
    """Log lines, oldest first (or newest first): a flow run's (including its task runs',
    and with ``include_subflows`` its descendants' and their task runs') and/or a task
    run's; at ``min_level`` or above, containing ``text`` in any case."""
    order = [log.c.timestamp.desc(), log.c.id.desc()] if newest_first else [log.c.timestamp,
                                                                           log.c.id]
    query = sa.select(log).order_by(*order).limit(limit).offset(offset)
    if flow_run_id is not None:
        runs: Any = [flow_run_id]
        if include_subflows:
            runs = _descendants_and_self(flow_run_id)
        its_task_runs = sa.select(task_run.c.id).where(task_run.c.flow_run_id.in_(runs))
        query = query.where(
            sa.or_(log.c.flow_run_id.in_(runs), log.c.task_run_id.in_(its_task_runs))
        )
    if task_run_id is not None:
        query = query.where(log.c.task_run_id == task_run_id)
    if min_level:
        query = query.where(log.c.level >= min_level)
    if text:
        query = query.where(log.c.message.icontains(text, autoescape=True))
    return [
        LogRecord(
            id=row["record_id"] or _legacy_log_id(row["id"]),
            flow_run_id=row["flow_run_id"],
            task_run_id=row["task_run_id"],
            name=row["name"],
            level=row["level"],
            message=row["message"],
            timestamp=row["timestamp"],
        )
        for row in conn.execute(query).mappings()
    ]


def _descendants_and_self(flow_run_id: uuid.UUID) -> sa.Select[Any]:
    """The ids of a flow run and of every flow run below it, as a subquery."""
    tree = sa.select(flow_run.c.id).where(flow_run.c.id == flow_run_id).cte(recursive=True)
    below = sa.select(flow_run.c.id).where(flow_run.c.parent_flow_run_id == tree.c.id)
    tree = tree.union_all(below)
    return sa.select(tree.c.id)


def _apply_batch_sqlalchemy(
    conn: Connection, batch: RecordBatch, now: datetime
) -> list[Refusal]:
    """apply_batch as SQLAlchemy statements whose column types convert each value: the
    reference the SQLite and PostgreSQL writers must store exactly as (a test holds them to
    it), and the path any other database would take (and be refused by upsert_into).
    """
    dialect = conn.dialect.name
    refused = _upsert_runs(conn, dialect, flow_run, latest(batch.flow_runs), _flow_run_row, now)
    refused += _upsert_runs(conn, dialect, task_run, latest(batch.task_runs), _task_run_row, now)
    states = not_refused(batch.states, refused)
    if states:
        conn.execute(_insert_new_states(dialect), [_state_row(s) for s in states])
    if batch.logs:
        conn.execute(_insert_new_logs(dialect), [_log_row(r) for r in batch.logs])
    return refused


def _upsert_runs(
    conn: Connection,
    dialect: str,
    table: sa.Table,
    runs: list[Run],
    to_row: Callable[[Run, datetime], dict[str, Any]],
    now: datetime,
) -> list[Refusal]:
    # executemany needs the same keys in every row, and a snapshot without a state must not
    # clear the stored one, so the two kinds go in two statements.
    with_state = [to_row(run, now) for run in runs if run.state is not None]
    without_state = [to_row(run, now) for run in runs if run.state is None]
    refused: list[Refusal] = []
    if with_state:
        # Every row inserts or updates one row, unless the WHERE guard kept it out.
        # (preserve_rowcount: without it psycopg's executemany reports -1.)
        changed = conn.execute(
            _upsert(dialect, table, with_state=True),
            with_state,
            execution_options={"preserve_rowcount": True},
        ).rowcount
        if changed != len(with_state):
            refused = refusals(conn, table, [run for run in runs if run.state is not None])
    if without_state:
        conn.execute(_upsert(dialect, table, with_state=False), without_state)
    return refused


@functools.cache
def _upsert(dialect: str, table: sa.Table, *, with_state: bool) -> sa.Insert:
    stmt = upsert_into(dialect, table)
    skip = {"id", "created", *DEPLOYMENT_RUN_COLUMNS}
    if not with_state:
        skip.update(STATE_COLUMNS)
    excluded = stmt.excluded
    where = sa.text(state_guard_sql(table.name)) if with_state else None
    return stmt.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={column.name: excluded[column.name] for column in table.c if column.name not in skip},
        where=where,
    )


@functools.cache
def _insert_new_states(dialect: str) -> sa.Insert:
    return upsert_into(dialect, run_state).on_conflict_do_nothing(index_elements=["id"])


@functools.cache
def _insert_new_logs(dialect: str) -> sa.Insert:
    return upsert_into(dialect, log).on_conflict_do_nothing(index_elements=["record_id"])


def _legacy_log_id(row_id: int) -> uuid.UUID:
    """An id for a log line stored before lines had one (NULL record_id): stable, derived
    from its row number, and never a UUIDv7 a writer could make."""
    return uuid.UUID(int=row_id)


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
        "record_id": record.id,
        "flow_run_id": record.flow_run_id,
        "task_run_id": record.task_run_id,
        "name": record.name,
        "level": record.level,
        "message": record.message,
        "timestamp": record.timestamp,
    }


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
        **{column: row[column] for column in DEPLOYMENT_RUN_COLUMNS},
    )


def _task_run(row: RowMapping) -> TaskRun:
    return TaskRun(
        **_run_fields(row),
        task_key=row["task_key"],
        flow_run_id=row["flow_run_id"],
        cache_key=row["cache_key"],
    )
