"""Applying record batches to a real SQLite store and reading them back."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from anabranch.client.embedded import EmbeddedClient
from anabranch.database import get_engine, write_transaction
from anabranch.database.models import DEPLOYMENT_RUN_COLUMNS
from anabranch.database.models import log as log_table
from anabranch.exceptions import InvalidStateTransition, ObjectNotFound
from anabranch.orchestration import runs
from anabranch.orchestration._postgresql_batches import apply_batch_postgresql
from anabranch.orchestration._sqlite_batches import apply_batch_sqlite
from anabranch.orchestration.transitions import refusal
from anabranch.results import ResultRef
from anabranch.schemas import (
    FlowRun,
    LogRecord,
    RecordBatch,
    State,
    StateRecord,
    StateType,
    TaskRun,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
WRITER = Path(__file__).with_name("concurrent_writer.py")


def after(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def state(type_: StateType, at: datetime, name: str | None = None, **fields) -> State:
    return State(type=type_, name=name or type_.value.title(), timestamp=at, **fields)


def flow_run(name: str = "brave-otter", at: datetime = T0, **fields) -> FlowRun:
    return FlowRun(name=name, flow_name="etl", created=at, **fields)


def task_run(flow: FlowRun, name: str, at: datetime, **fields) -> TaskRun:
    return TaskRun(name=name, task_key=f"etl.{name}", flow_run_id=flow.id, created=at, **fields)


def history(run: FlowRun | TaskRun, *states: State) -> list[StateRecord]:
    run.state = states[-1]
    return [StateRecord(run_id=run.id, state=s) for s in states]


def finished_flow_batch() -> tuple[FlowRun, list[TaskRun], RecordBatch]:
    """A completed flow run with two task runs, their state histories and logs."""
    flow = flow_run(start_time=T0, end_time=T0 + timedelta(seconds=3), run_count=1)
    ref = ResultRef(storage="/tmp/results", key="abc", serializer="json")
    states = history(
        flow,
        state(StateType.PENDING, T0),
        state(StateType.RUNNING, T0 + timedelta(seconds=0.1)),
        state(StateType.COMPLETED, T0 + timedelta(seconds=3), result_ref=ref),
    )
    tasks = []
    for i in range(2):
        started = after(1 + i)
        task = task_run(flow, f"add-{i}", started, parameters={"x": i}, tags=["math"], run_count=1)
        states += history(
            task,
            state(StateType.RUNNING, started),
            state(StateType.COMPLETED, started + timedelta(seconds=0.5), result_ref=ref),
        )
        tasks.append(task)
    logs = [
        LogRecord(flow_run_id=flow.id, name="f", level=20, message="start", timestamp=T0),
        LogRecord(task_run_id=tasks[1].id, name="t", level=40, message="late", timestamp=after(2)),
        LogRecord(task_run_id=tasks[0].id, name="t", level=20, message="early", timestamp=after(1)),
    ]
    return flow, tasks, RecordBatch(flow_runs=[flow], task_runs=tasks, states=states, logs=logs)


def test_a_batch_reads_back_as_the_runs_states_and_logs_it_holds(store: EmbeddedClient) -> None:
    flow, tasks, batch = finished_flow_batch()
    store.write_batch(batch)

    stored = store.read_flow_run(flow.id)
    assert stored.model_dump() == flow.model_dump()
    assert stored.state.result_ref == flow.state.result_ref
    assert [t.model_dump() for t in store.read_task_runs(flow_run_id=flow.id)] == [
        t.model_dump() for t in tasks
    ]
    assert store.read_task_run(tasks[0].id).parameters == {"x": 0}
    assert [r.state.type for r in store.read_states(flow.id)] == [
        StateType.PENDING,
        StateType.RUNNING,
        StateType.COMPLETED,
    ]


def test_a_flow_runs_logs_include_its_task_runs_logs_in_time_order(store: EmbeddedClient) -> None:
    flow, tasks, batch = finished_flow_batch()
    store.write_batch(batch)

    assert [r.message for r in store.read_logs(flow_run_id=flow.id)] == ["start", "early", "late"]
    assert [r.message for r in store.read_logs(task_run_id=tasks[1].id)] == ["late"]
    assert [r.message for r in store.read_logs(flow_run_id=flow.id, limit=1)] == ["start"]


def test_applying_a_batch_twice_changes_no_run_and_no_state(
    store: EmbeddedClient, database_url: str
) -> None:
    flow, tasks, batch = finished_flow_batch()
    batch.logs = []
    store.write_batch(batch)
    first = _table_contents(database_url, "flow_run", "task_run", "run_state")

    store.write_batch(batch)

    second = _table_contents(database_url, "flow_run", "task_run", "run_state")
    assert _without_updated(second) == _without_updated(first)


def test_timestamps_read_back_as_the_same_instant_in_utc(store: EmbeddedClient) -> None:
    paris = timezone(timedelta(hours=2))
    start = datetime(2025, 6, 1, 14, 30, 0, 123456, tzinfo=paris)
    flow = flow_run(start_time=start)
    store.write_batch(RecordBatch(flow_runs=[flow]))

    stored = store.read_flow_run(flow.id)

    assert stored.start_time == start
    assert stored.start_time.tzinfo == timezone.utc
    assert stored.start_time.hour == 12
    assert stored.created.tzinfo == timezone.utc


def test_a_naive_timestamp_is_refused_with_the_way_out(store: EmbeddedClient) -> None:
    flow = flow_run(start_time=datetime(2025, 6, 1, 14, 30))

    with pytest.raises(sa.exc.StatementError, match="timezone-aware"):
        store.write_batch(RecordBatch(flow_runs=[flow]))


def test_a_snapshot_without_a_state_keeps_the_stored_state(store: EmbeddedClient) -> None:
    flow = flow_run()
    states = history(flow, state(StateType.RUNNING, T0))
    store.write_batch(RecordBatch(flow_runs=[flow], states=states))
    snapshot = flow.model_copy(update={"state": None, "run_count": 2})

    store.write_batch(RecordBatch(flow_runs=[snapshot]))

    stored = store.read_flow_run(flow.id)
    assert stored.run_count == 2
    assert stored.state == flow.state


def test_an_older_snapshot_arriving_late_does_not_undo_a_newer_one(store: EmbeddedClient) -> None:
    flow = flow_run()
    history(flow, state(StateType.RUNNING, T0))
    older = flow.model_copy()
    history(flow, state(StateType.COMPLETED, T0 + timedelta(seconds=1)))
    store.write_batch(RecordBatch(flow_runs=[flow]))

    store.write_batch(RecordBatch(flow_runs=[older]))

    assert store.read_flow_run(flow.id).state.type is StateType.COMPLETED


def test_an_older_snapshot_changes_no_field_of_the_newer_stored_run(
    store: EmbeddedClient,
) -> None:
    flow = flow_run(run_count=1, start_time=T0)
    history(flow, state(StateType.RUNNING, T0))
    older = flow.model_copy()
    flow.run_count, flow.end_time, flow.tags = 2, after(5), ["retried"]
    history(flow, state(StateType.COMPLETED, after(5), message="done"))
    store.write_batch(RecordBatch(flow_runs=[flow]))

    store.write_batch(RecordBatch(flow_runs=[older]))

    assert store.read_flow_run(flow.id).model_dump() == flow.model_dump()


def test_a_snapshot_with_a_state_fills_in_a_run_stored_without_one(
    store: EmbeddedClient,
) -> None:
    flow = flow_run()
    store.write_batch(RecordBatch(flow_runs=[flow]))
    history(flow, state(StateType.RUNNING, T0))

    store.write_batch(RecordBatch(flow_runs=[flow]))

    assert store.read_flow_run(flow.id).state == flow.state


def test_the_last_snapshot_of_a_run_in_one_batch_wins(store: EmbeddedClient) -> None:
    flow = flow_run()
    history(flow, state(StateType.RUNNING, T0))
    latest = flow.model_copy(update={"run_count": 3})

    store.write_batch(RecordBatch(flow_runs=[flow, latest]))

    assert store.read_flow_run(flow.id).run_count == 3


def test_a_state_sent_again_is_stored_once_as_first_sent(store: EmbeddedClient) -> None:
    flow = flow_run()
    (first,) = history(flow, state(StateType.RUNNING, T0, message="first"))
    resent = StateRecord(run_id=flow.id, state=first.state.model_copy(update={"message": "second"}))

    store.write_batch(RecordBatch(states=[first, resent]))
    store.write_batch(RecordBatch(states=[resent]))

    assert [r.state.message for r in store.read_states(flow.id)] == ["first"]


def test_log_lines_with_the_same_text_are_each_stored(store: EmbeddedClient) -> None:
    flow = flow_run()
    lines = [
        LogRecord(flow_run_id=flow.id, name="f", level=20, message="tick", timestamp=T0)
        for _ in range(3)
    ]

    store.write_batch(RecordBatch(logs=lines))

    stored = store.read_logs(flow_run_id=flow.id)
    assert [r.message for r in stored] == ["tick"] * 3
    assert sorted(r.id for r in stored) == sorted(line.id for line in lines)


def test_the_same_batch_applied_twice_stores_each_log_line_once(
    store: EmbeddedClient, database_url: str
) -> None:
    flow, tasks, batch = finished_flow_batch()
    store.write_batch(batch)
    first = _table_contents(database_url, "log")

    store.write_batch(batch)
    store.write_batch(RecordBatch(logs=batch.logs + batch.logs[:1]))

    assert _table_contents(database_url, "log") == first
    stored = store.read_logs(flow_run_id=flow.id)
    assert [(r.id, r.message) for r in stored] == [
        (r.id, r.message) for r in sorted(batch.logs, key=lambda r: r.timestamp)
    ]


def test_a_log_line_stored_before_lines_had_ids_reads_back_with_a_stable_id(
    store: EmbeddedClient, database_url: str
) -> None:
    flow = flow_run()
    with write_transaction(database_url) as conn:
        conn.execute(
            sa.insert(log_table).values(
                flow_run_id=flow.id, name="f", level=20, message="old", timestamp=T0
            )
        )

    (first,) = store.read_logs(flow_run_id=flow.id)
    (again,) = store.read_logs(flow_run_id=flow.id)

    assert first.message == "old"
    assert first.id == again.id


def test_a_final_run_stays_final_and_the_rest_of_the_batch_is_stored(
    store: EmbeddedClient,
) -> None:
    done = flow_run("done")
    history(done, state(StateType.RUNNING, T0), state(StateType.COMPLETED, after(1)))
    store.write_batch(RecordBatch(flow_runs=[done]))
    straggler = done.model_copy(update={"run_count": 7})
    late_states = history(straggler, state(StateType.RUNNING, after(2)))
    other = flow_run("other")
    other_states = history(other, state(StateType.RUNNING, after(2)))
    line = LogRecord(flow_run_id=other.id, name="f", level=20, message="still here")

    with pytest.raises(InvalidStateTransition) as caught:
        store.write_batch(
            RecordBatch(
                flow_runs=[straggler, other], states=late_states + other_states, logs=[line]
            )
        )

    rule = refusal(StateType.COMPLETED, StateType.RUNNING)
    assert caught.value.refused == [(done.id, rule)]
    message = str(caught.value)
    assert str(done.id) in message and "final states are final" in message
    assert "rest of the batch was stored" in message
    stored = store.read_flow_run(done.id)
    assert stored.state == done.state and stored.run_count == done.run_count
    assert late_states[0].state.id not in {r.state.id for r in store.read_states(done.id)}
    assert store.read_flow_run(other.id).state == other.state
    assert [r.state for r in store.read_states(other.id)] == [other.state]
    assert [r.message for r in store.read_logs(flow_run_id=other.id)] == ["still here"]


def test_resending_a_final_state_is_no_refusal(store: EmbeddedClient) -> None:
    task = task_run(flow_run(), "t", T0)
    states = history(task, state(StateType.RUNNING, T0), state(StateType.COMPLETED, after(1)))
    batch = RecordBatch(task_runs=[task], states=states)
    store.write_batch(batch)

    store.write_batch(batch)

    assert store.read_task_run(task.id).state == task.state
    assert len(store.read_states(task.id)) == 2


def test_an_older_snapshot_of_a_final_run_is_ignored_not_refused(store: EmbeddedClient) -> None:
    flow = flow_run()
    history(flow, state(StateType.RUNNING, T0))
    older = flow.model_copy()
    history(flow, state(StateType.FAILED, after(1)))
    store.write_batch(RecordBatch(flow_runs=[flow]))

    store.write_batch(RecordBatch(flow_runs=[older]))  # no error: it was simply late

    assert store.read_flow_run(flow.id).state.type is StateType.FAILED


def test_a_cancelling_run_may_only_become_cancelled(store: EmbeddedClient) -> None:
    flow = flow_run()
    history(flow, state(StateType.CANCELLING, T0))
    store.write_batch(RecordBatch(flow_runs=[flow]))
    running = flow.model_copy()
    history(running, state(StateType.RUNNING, after(1)))

    with pytest.raises(InvalidStateTransition, match="CANCELLING"):
        store.write_batch(RecordBatch(flow_runs=[running]))
    assert store.read_flow_run(flow.id).state.type is StateType.CANCELLING

    history(flow, state(StateType.CANCELLED, after(2)))
    store.write_batch(RecordBatch(flow_runs=[flow]))
    assert store.read_flow_run(flow.id).state.type is StateType.CANCELLED


def test_the_state_guard_in_sql_follows_the_rule_for_every_pair_of_states(
    store: EmbeddedClient,
) -> None:
    """The upserts carry transitions.refusal as SQL; for every current and proposed state
    type the database must decide what refusal() decides."""
    runs_by_pair = {}
    for current in StateType:
        for proposed in StateType:
            run = task_run(flow_run(), f"{current.value}-{proposed.value}", T0)
            history(run, state(current, T0))
            runs_by_pair[current, proposed] = run
    store.write_batch(RecordBatch(task_runs=list(runs_by_pair.values())))
    for run in runs_by_pair.values():
        history(run, state(StateType(run.name.split("-")[1]), after(1)))

    try:
        store.write_batch(RecordBatch(task_runs=list(runs_by_pair.values())))
        refused: set[uuid.UUID] = set()
    except InvalidStateTransition as exc:
        refused = {run_id for run_id, _ in exc.refused}

    for (current, proposed), run in runs_by_pair.items():
        expected = refusal(current, proposed) is not None
        assert (run.id in refused) is expected, (current, proposed)
        kept = store.read_task_run(run.id).state.type
        assert kept is (current if expected else proposed), (current, proposed)


def test_sqlite_rows_are_stored_exactly_as_sqlalchemys_column_types_store_them(
    tmp_path: Path,
) -> None:
    """apply_batch builds SQLite rows itself (for speed); the text must be what the column
    types write, or reads, filters and ordering would change."""
    batch = _batch_filling_every_column()
    stored = []
    for name, apply in (
        ("sqlalchemy", runs._apply_batch_sqlalchemy),
        ("own", apply_batch_sqlite),
    ):
        url = f"sqlite:///{tmp_path / name / 'anabranch.db'}"
        EmbeddedClient(url)
        with write_transaction(url) as conn:
            apply(conn, batch, after(60))
        stored.append(_table_contents(url, "flow_run", "task_run", "run_state", "log"))

    assert stored[1] == stored[0]
    for table, rows in stored[1].items():
        # A deployment run's own columns are set at creation, never by batches.
        written = [column for column in rows[0] if column not in DEPLOYMENT_RUN_COLUMNS]
        empty = [column for column in written if all(row[column] is None for row in rows)]
        assert not empty, f"{table} columns never written: {empty}"


def test_each_databases_own_writer_stores_exactly_what_the_sqlalchemy_path_stores(
    database_url: str,
) -> None:
    """SQLite and PostgreSQL each have a faster writer than the SQLAlchemy statements; both
    must store the very values the column types would."""
    batch = _batch_filling_every_column()
    tables = ("flow_run", "task_run", "run_state", "log")
    own = {"sqlite": apply_batch_sqlite, "postgresql": apply_batch_postgresql}
    writer = own[sa.make_url(database_url).get_backend_name()]
    EmbeddedClient(database_url)
    stored = []
    for apply in (runs._apply_batch_sqlalchemy, writer):
        with write_transaction(database_url) as conn:
            for table in tables:
                conn.execute(sa.text(f"DELETE FROM {table}"))
            apply(conn, batch, after(60))
        contents = _table_contents(database_url, *tables)
        # Log rows are numbered by the database (a sequence on PostgreSQL goes on counting).
        contents["log"] = [{k: v for k, v in row.items() if k != "id"} for row in contents["log"]]
        stored.append(contents)

    assert stored[1] == stored[0]


def _batch_filling_every_column() -> RecordBatch:
    """Every column of every table holds a value in at least one row, with the awkward
    cases: a non-UTC and a whole-second timestamp, a run without a state, JSON that is not
    plain (nested, unicode, a value JSON can not express), and states sent twice."""
    paris = timezone(timedelta(hours=2))
    ref = ResultRef(storage="/tmp/results", key="k", serializer="pickle")
    parent = flow_run("parent", start_time=T0, end_time=after(9), run_count=1)
    history(parent, state(StateType.COMPLETED, after(9), message="all good", result_ref=ref))
    child = flow_run(
        "child",
        after(1).astimezone(paris),
        flow_version="1.2",
        parameters={"x": [1, {"é": None}], "when": T0, "odd": object()},
        tags=["a", "b"],
        parent_flow_run_id=parent.id,
        parent_task_run_id=uuid.uuid4(),
        heartbeat=after(2).astimezone(paris),
    )
    task = task_run(
        parent, "cached", after(2.5), cache_key="abc", start_time=after(2.5), end_time=after(3)
    )
    states = history(
        task,
        state(StateType.RUNNING, after(2.5)),
        state(StateType.COMPLETED, after(3).astimezone(paris), message="cached", result_ref=ref),
    )
    logs = [
        LogRecord(flow_run_id=parent.id, task_run_id=task.id, name="t", level=20, message="hi"),
        LogRecord(flow_run_id=parent.id, name="f", level=40, message="ü", timestamp=after(4)),
    ]
    return RecordBatch(
        flow_runs=[parent, child], task_runs=[task], states=states + states[:1], logs=logs
    )


def test_flow_runs_read_newest_first_filtered_by_state_flow_or_parent(
    store: EmbeddedClient,
) -> None:
    parent = flow_run("parent", T0)
    history(parent, state(StateType.RUNNING, T0))
    child = flow_run("child", T0 + timedelta(seconds=1), parent_flow_run_id=parent.id)
    history(child, state(StateType.RUNNING, T0, name="Retrying"))
    done = flow_run("done", T0 + timedelta(seconds=2))
    history(done, state(StateType.COMPLETED, T0))
    other = FlowRun(name="other", flow_name="report", created=T0 + timedelta(seconds=3))
    store.write_batch(RecordBatch(flow_runs=[parent, child, done, other]))

    def names(**filters) -> list[str]:
        return [run.name for run in store.read_flow_runs(**filters)]

    assert names() == ["other", "done", "child", "parent"]
    assert names(limit=2, offset=1) == ["done", "child"]
    assert names(state_types=[StateType.RUNNING]) == ["child", "parent"]
    assert names(state_names=["retrying"]) == ["child"]
    assert names(flow_name="report") == ["other"]
    assert names(parent_flow_run_id=parent.id) == ["child"]


def test_reading_an_unknown_run_names_the_id_and_what_it_is(store: EmbeddedClient) -> None:
    missing = uuid.uuid4()

    with pytest.raises(ObjectNotFound, match=f"No flow run with id {missing}"):
        store.read_flow_run(missing)
    with pytest.raises(ObjectNotFound, match=f"No task run with id {missing}"):
        store.read_task_run(missing)
    assert store.read_states(missing) == []


def test_records_may_arrive_before_the_runs_they_belong_to(store: EmbeddedClient) -> None:
    flow = flow_run()
    task = task_run(flow, "early-bird", T0)
    states = history(task, state(StateType.COMPLETED, T0))

    store.write_batch(RecordBatch(task_runs=[task], states=states))
    store.write_batch(RecordBatch(flow_runs=[flow]))

    assert [t.name for t in store.read_task_runs(flow_run_id=flow.id)] == ["early-bird"]


def test_processes_writing_one_fresh_database_at_once_lose_nothing(database_url: str) -> None:
    writers, batches, runs_per_batch = 5, 10, 50

    _run_together(
        [sys.executable, str(WRITER), database_url, f"w{n}", str(batches), str(runs_per_batch)]
        for n in range(writers)
    )

    expected = writers * batches * runs_per_batch
    with get_engine(database_url).connect() as conn:
        for table in ("task_run", "run_state", "log"):
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == expected


def _run_together(commands) -> None:
    """Start every command, wait until each says "ready", release them all at once."""
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for cmd in commands
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        assert proc.wait(timeout=60) == 0


def _table_contents(url: str, *tables: str) -> dict[str, list[dict]]:
    with get_engine(url).connect() as conn:
        return {
            table: [
                dict(row)
                for row in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id")).mappings()
            ]
            for table in tables
        }


def _without_updated(contents: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return {
        table: [{k: v for k, v in row.items() if k != "updated"} for row in rows]
        for table, rows in contents.items()
    }


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_process_opens_its_own_connections_not_its_parents(
    store: EmbeddedClient, database_url: str
) -> None:
    with get_engine(database_url).connect() as conn:
        inherited = conn.connection.dbapi_connection  # back in the pool, copied into the child

    child = multiprocessing.get_context("fork").Process(
        target=_write_from_fresh_connection, args=(database_url, inherited)
    )
    child.start()
    child.join(timeout=60)

    assert child.exitcode == 0
    assert [run.name for run in store.read_flow_runs()] == ["from-child"]


def _write_from_fresh_connection(url: str, inherited: object) -> None:
    with get_engine(url).connect() as conn:
        assert conn.connection.dbapi_connection is not inherited
    EmbeddedClient(url).write_batch(RecordBatch(flow_runs=[flow_run("from-child")]))
