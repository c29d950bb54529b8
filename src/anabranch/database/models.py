"""The tables: flow runs, task runs, their state history and their log lines.

There are deliberately no foreign keys between these tables. Records arrive from batched
writers in several processes, and the order across processes is not guaranteed: a task run
or a log line may land before the flow run it belongs to, a subflow before its parent.
Every reference is a plain indexed id that readers join on when both sides exist.

A run row flattens its current State into ``state_*`` columns (plus ``result_ref``), so
listing and filtering runs never needs a join; ``run_state`` keeps the full history.
"""

from __future__ import annotations

import sqlalchemy as sa

from anabranch.database.types import UTCDateTime, json_column

# Explicit names keep the migrations identical on SQLite and PostgreSQL.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    }
)


def _state_columns() -> list[sa.Column]:
    return [
        sa.Column("state_id", sa.Uuid, nullable=True),
        sa.Column("state_type", sa.String(16), nullable=True),
        sa.Column("state_name", sa.Text, nullable=True),
        sa.Column("state_message", sa.Text, nullable=True),
        sa.Column("state_timestamp", UTCDateTime, nullable=True),
        sa.Column("result_ref", json_column(none_as_null=True), nullable=True),
    ]


def _run_columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("parameters", json_column(), nullable=False),
        sa.Column("tags", json_column(), nullable=False),
        sa.Column("run_count", sa.Integer, nullable=False),
        sa.Column("start_time", UTCDateTime, nullable=True),
        sa.Column("end_time", UTCDateTime, nullable=True),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
        *_state_columns(),
    ]


def _deployment_run_columns() -> list[sa.Column]:
    """A flow run's link to its deployment and worker: set when the run is created or
    dispatched, never by the engine's snapshots."""
    return [
        sa.Column("deployment_id", sa.Uuid, nullable=True),
        sa.Column("work_pool_name", sa.Text, nullable=True),
        sa.Column("work_queue_name", sa.Text, nullable=True),
        sa.Column("expected_start_time", UTCDateTime, nullable=True),
        sa.Column("idempotency_key", sa.Text, nullable=True),
        sa.Column("job_variables", json_column(none_as_null=True), nullable=True),
        sa.Column("worker_name", sa.Text, nullable=True),
        sa.Column("infrastructure_pid", sa.Integer, nullable=True),
    ]


flow_run = sa.Table(
    "flow_run",
    metadata,
    *_run_columns(),
    sa.Column("flow_name", sa.Text, nullable=False),
    sa.Column("flow_version", sa.Text, nullable=True),
    sa.Column("parent_flow_run_id", sa.Uuid, nullable=True),
    sa.Column("parent_task_run_id", sa.Uuid, nullable=True),
    sa.Column("heartbeat", UTCDateTime, nullable=True),
    *_deployment_run_columns(),
    sa.Index(None, "created"),
    sa.Index(None, "updated"),
    sa.Index(None, "flow_name"),
    sa.Index(None, "parent_flow_run_id", "created"),
    sa.Index(None, "state_type"),
    sa.Index(None, "work_pool_name", "state_type", "expected_start_time"),
    sa.Index(None, "deployment_id", "idempotency_key", unique=True),
)
DEPLOYMENT_RUN_COLUMNS = frozenset(column.name for column in _deployment_run_columns())

task_run = sa.Table(
    "task_run",
    metadata,
    *_run_columns(),
    sa.Column("task_key", sa.Text, nullable=False),
    sa.Column("flow_run_id", sa.Uuid, nullable=True),
    sa.Column("cache_key", sa.Text, nullable=True),
    sa.Index(None, "flow_run_id"),
    sa.Index(None, "updated"),
)

run_state = sa.Table(
    "run_state",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("run_id", sa.Uuid, nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("timestamp", UTCDateTime, nullable=False),
    sa.Column("result_ref", json_column(none_as_null=True), nullable=True),
    sa.Index(None, "run_id", "timestamp"),
)

log = sa.Table(
    "log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # The writer's id for the line, so a batch sent twice stores it once (NULL on old rows).
    sa.Column("record_id", sa.Uuid, nullable=True),
    sa.Column("flow_run_id", sa.Uuid, nullable=True),
    sa.Column("task_run_id", sa.Uuid, nullable=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("timestamp", UTCDateTime, nullable=False),
    sa.Index(None, "flow_run_id", "timestamp"),
    sa.Index(None, "task_run_id"),
    sa.Index(None, "record_id", unique=True),
)

# Concurrency limits: one namespace of named limits. Slots are held through leases with an
# expiry that their holder renews; a holder that dies stops renewing and its slots come free
# once the lease expires. Waiters leave a ticket so that slots go out in arrival order.
concurrency_limit = sa.Table(
    "concurrency_limit",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("limit", sa.Integer, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("slot_decay_per_second", sa.Float, nullable=False),
    sa.Column("decaying_slots", sa.Float, nullable=False),
    sa.Column("decayed_at", UTCDateTime, nullable=True),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
)

concurrency_lease = sa.Table(
    "concurrency_lease",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("holder", sa.Text, nullable=False),
    sa.Column("run_id", sa.Uuid, nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Index(None, "expires_at"),
)

concurrency_lease_slot = sa.Table(
    "concurrency_lease_slot",
    metadata,
    sa.Column("lease_id", sa.Uuid, primary_key=True),
    sa.Column("limit_id", sa.Uuid, primary_key=True),
    sa.Column("occupy", sa.Integer, nullable=False),
    sa.Index(None, "limit_id"),
)

concurrency_waiter = sa.Table(
    "concurrency_waiter",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("limit_id", sa.Uuid, primary_key=True),
    sa.Column("occupy", sa.Integer, nullable=False),
    sa.Column("since", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index(None, "limit_id", "since"),
)

# Deployments and where their runs go. Pools, queues and deployments are addressed by name
# (a deployment by flow name and its own name), which is how users and workers refer to them.
work_pool = sa.Table(
    "work_pool",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("concurrency_limit", sa.Integer, nullable=True),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
)

work_queue = sa.Table(
    "work_queue",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("work_pool_name", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("concurrency_limit", sa.Integer, nullable=True),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.UniqueConstraint("work_pool_name", "name"),
)

deployment = sa.Table(
    "deployment",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("flow_name", sa.Text, nullable=False),
    sa.Column("entrypoint", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("version", sa.Text, nullable=True),
    sa.Column("tags", json_column(), nullable=False),
    sa.Column("parameters", json_column(), nullable=False),
    sa.Column("parameter_schema", json_column(none_as_null=True), nullable=True),
    sa.Column("work_pool_name", sa.Text, nullable=True),
    sa.Column("work_queue_name", sa.Text, nullable=True),
    sa.Column("job_variables", json_column(), nullable=False),
    sa.Column("concurrency_limit", sa.Integer, nullable=True),
    sa.Column("schedules", json_column(), nullable=False),
    sa.Column("late_run_policy", sa.String(16), nullable=False),
    sa.Column("max_lateness_seconds", sa.Float, nullable=True),
    sa.Column("paused", sa.Boolean, nullable=False),
    # When a `serve` process serving it last polled (None: never, or served by workers).
    sa.Column("last_polled", UTCDateTime, nullable=True),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.UniqueConstraint("flow_name", "name"),
)

worker = sa.Table(
    "worker",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("work_pool_name", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("limit", sa.Integer, nullable=True),
    sa.Column("last_heartbeat", UTCDateTime, nullable=False),
    # Set once its going offline has been told (an event), cleared when it polls again.
    sa.Column("offline", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("work_pool_name", "name"),
)

# Events. A state change's event is derived by the database itself: a trigger on run_state
# (migration 0006) adds a row holding only its name and resource id, the rest (labels,
# payload) is read from the run and its state when the event is read. Other events carry
# their labels and payload. ``seq`` is the order of arrival; on PostgreSQL ``tx`` is the
# writing transaction's id, so a reader can tell which rows may still be committed below
# what it has read (see orchestration.events).
event = sa.Table(
    "event",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Uuid, nullable=False, unique=True),
    sa.Column("occurred", UTCDateTime, nullable=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("resource_id", sa.Text, nullable=False),
    sa.Column("resource", json_column(none_as_null=True), nullable=True),
    sa.Column("related", json_column(none_as_null=True), nullable=True),
    sa.Column("payload", json_column(none_as_null=True), nullable=True),
    sa.Column("tx", sa.BigInteger, nullable=True),
    # Each index is a write per state change, which on SQLite is the writer's own time (the
    # user's flow's process): there, events of a resource are found by reading, and the old
    # ones from the start of ``seq`` (rows arrive in about the order they occurred). Only
    # PostgreSQL writes ``tx``.
    sa.Index(None, "resource_id", "occurred").ddl_if(dialect="postgresql"),
    sa.Index(None, "tx", "seq").ddl_if(dialect="postgresql"),
)

automation = sa.Table(
    "automation",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("trigger", json_column(), nullable=False),
    sa.Column("actions", json_column(), nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
)

# An open window of a trigger for one for_each key: events counted since ``opened``, or
# (proactive) the time by which the expected events must have come.
automation_bucket = sa.Table(
    "automation_bucket",
    metadata,
    sa.Column("automation_id", sa.Uuid, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("opened", UTCDateTime, nullable=False),
    sa.Column("deadline", UTCDateTime, nullable=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("event", json_column(none_as_null=True), nullable=True),
    sa.Index(None, "deadline"),
)

automation_firing = sa.Table(
    "automation_firing",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("automation_id", sa.Uuid, nullable=False),
    # What fired, so that evaluating the same events again fires nothing twice.
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("fired", UTCDateTime, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("event", json_column(none_as_null=True), nullable=True),
    sa.Column("flow_run_id", sa.Uuid, nullable=True),
    sa.UniqueConstraint("automation_id", "key"),
    sa.Index(None, "automation_id", "fired"),
    sa.Index(None, "flow_run_id"),
)

# One action of a firing, as it was declared when it fired, and its delivery.
automation_action = sa.Table(
    "automation_action",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("firing_id", sa.Uuid, nullable=False),
    sa.Column("index", sa.Integer, nullable=False),
    sa.Column("action", json_column(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt", UTCDateTime, nullable=False),
    sa.Column("claimed_until", UTCDateTime, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("finished", UTCDateTime, nullable=True),
    sa.Index(None, "status", "next_attempt"),
    sa.Index(None, "firing_id"),
)

# Where a background service of the server stands (the automation evaluator's place in
# the event feed) and which replica runs it now (``holder`` until ``expires_at``).
service_state = sa.Table(
    "service_state",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("holder", sa.Text, nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("position", json_column(none_as_null=True), nullable=True),
)
