"""What every batch writer shares: the run columns, the upsert's guard and the refusals.

A batch is written by one of three writers (``runs.apply_batch`` picks it): plain SQLAlchemy
statements, the reference; the SQLite writer; the PostgreSQL writer. All three upsert run
snapshots under the same guard, written here once:

- a snapshot older than the stored state changes nothing, because writers in several
  processes may deliver snapshots out of order (timestamps compare as instants: fixed-width
  UTC text on SQLite, timestamptz on PostgreSQL); except the final state a Crashed run's
  own process reports late (``transitions.refusal`` says why);
- a snapshot whose state breaks the state rule (``transitions.refusal``) changes nothing
  either, and is reported. The rule is carried into SQL, derived from ``refusal()`` itself
  so the two can not drift apart, and the database applies it row by row within the
  statement: no read first, no race with another writer, no extra query for a batch that
  breaks no rule.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch.orchestration.transitions import refusal
from anabranch.schemas import TERMINAL_TYPES, FlowRun, StateRecord, StateType, TaskRun

Run = TypeVar("Run", FlowRun, TaskRun)
# A run whose snapshot a writer refused, and the rule it broke.
Refusal = tuple[uuid.UUID, str]

# The columns of a run row, in the order the driver-level writers' rows hold them: the ones
# every run has, then the flow or task run's own, then (for a snapshot with a state) the
# state's. DEPLOYMENT_RUN_COLUMNS are not among them: snapshots never change them.
RUN_COLUMNS = (
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
FLOW_RUN_COLUMNS = (
    "flow_name", "flow_version", "parent_flow_run_id", "parent_task_run_id", "heartbeat"
)
TASK_RUN_COLUMNS = ("task_key", "flow_run_id", "cache_key")
STATE_COLUMNS = (
    "state_id",
    "state_type",
    "state_name",
    "state_message",
    "state_timestamp",
    "result_ref",
)


def latest(runs: Iterable[Run]) -> list[Run]:
    """One snapshot per run id, the last one winning: an upsert may touch a row once only."""
    return list({run.id: run for run in runs}.values())


@functools.cache
def state_guard_sql(table: str) -> str:
    """The WHERE of an upsert of snapshots with a state into ``table``: true when the new
    row (``excluded``) may replace the stored one. The same text on SQLite and PostgreSQL
    (state types are constants here, never input)."""
    free, limited = _allowed_moves()
    current, proposed = f"{table}.state_type", "excluded.state_type"
    allowed = [
        f"{current} IS NULL",
        f"{table}.state_id = excluded.state_id",
        f"{current} IN ({_sql_strings(free)})",
        *(
            f"({current} = '{type_}' AND {proposed} IN ({_sql_strings(moves)}))"
            for type_, moves in limited.items()
        ),
    ]
    finals = _sql_strings(t.value for t in TERMINAL_TYPES if t is not StateType.CRASHED)
    return (
        f"({table}.state_timestamp IS NULL"
        f" OR excluded.state_timestamp >= {table}.state_timestamp"
        f" OR ({current} = '{StateType.CRASHED.value}' AND {proposed} IN ({finals})))"
        f" AND ({' OR '.join(allowed)})"
    )


@functools.cache
def _allowed_moves() -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """refusal() as tables: the state types a run may leave for any other, and for each
    other type the types it may move to. A type in neither (a final one) goes nowhere but
    to its own stored state."""
    free: list[str] = []
    limited: dict[str, tuple[str, ...]] = {}
    for current in StateType:
        moves = tuple(p.value for p in StateType if refusal(current, p) is None)
        if len(moves) == len(StateType):
            free.append(current.value)
        elif moves:
            limited[current.value] = moves
    return tuple(free), limited


def _sql_strings(values: Iterable[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)


# Ids per query when reading rows back by id: under every database's bind parameter limit.
_IDS_PER_QUERY = 5000


def refusals(conn: Connection, table: sa.Table, runs: list[Run]) -> list[Refusal]:
    """Which of these snapshots (all with a state) the guard kept out for breaking the rule.

    Writers call it only when the upsert wrote fewer rows than it was given: the others it
    kept out were older than the stored state, which is late delivery, not a refusal.
    """
    free = _allowed_moves()[0]
    stored: dict[uuid.UUID, Any] = {}
    ids = [run.id for run in runs]
    for start in range(0, len(ids), _IDS_PER_QUERY):
        query = sa.select(
            table.c.id, table.c.state_id, table.c.state_type, table.c.state_timestamp
        ).where(
            table.c.id.in_(ids[start : start + _IDS_PER_QUERY]),
            table.c.state_type.not_in(free),
        )
        stored.update((row.id, row) for row in conn.execute(query))
    refused: list[Refusal] = []
    for run in runs:
        row = stored.get(run.id)
        state = run.state
        assert state is not None
        late = state.timestamp < row.state_timestamp if row is not None else False
        if row is None or row.state_id == state.id or (late and not _crash_overruled(row, state)):
            continue
        reason = refusal(StateType(row.state_type), state.type)
        if reason is not None:
            refused.append((run.id, reason))
    return refused


def _crash_overruled(row: Any, state: Any) -> bool:
    """A late final state that replaces a stored Crashed one (it is not a late snapshot)."""
    return row.state_type == StateType.CRASHED.value and state.is_final()


def not_refused(records: list[StateRecord], refused: list[Refusal]) -> list[StateRecord]:
    """The state records that do not belong to a refused run: those are not added."""
    if not refused:
        return records
    blocked = {run_id for run_id, _ in refused}
    return [record for record in records if record.run_id not in blocked]


@contextmanager
def as_statement_error(sql: str) -> Iterator[None]:
    """Raise what SQLAlchemy raises when one of its bind processors refuses a value (a naive
    datetime, something the JSON serializer can not write): a StatementError naming the
    statement, with the original error as ``orig``."""
    try:
        yield
    except Exception as exc:
        message = f"({type(exc).__module__}.{type(exc).__name__}) {exc}"
        raise sa.exc.StatementError(message, sql, None, exc) from exc
