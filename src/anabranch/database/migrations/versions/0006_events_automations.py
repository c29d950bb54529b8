"""Events (a state change's event derived by a trigger on run_state), automations, their
open windows, firings and actions, the services' places, workers told offline, and when a
`serve` process last polled for a deployment.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TIMESTAMP = sa.DateTime(timezone=True)

# On SQLite a row trigger (cheap there: no statement-level triggers exist) that looks the
# run up once; ids are stored as 32 hex digits, and a resource id carries the usual
# hyphenated form. (``WHERE true`` lets SQLite read ON CONFLICT as the upsert clause.)
_SQLITE_HYPHENATED = (
    "substr(NEW.run_id, 1, 8) || '-' || substr(NEW.run_id, 9, 4) || '-' || "
    "substr(NEW.run_id, 13, 4) || '-' || substr(NEW.run_id, 17, 4) || '-' || "
    "substr(NEW.run_id, 21)"
)
_SQLITE_TRIGGER = f"""
CREATE TRIGGER run_state_event AFTER INSERT ON run_state
BEGIN
    INSERT INTO event (id, occurred, event, resource_id)
    SELECT NEW.id, NEW.timestamp, 'anabranch.' || kind || '.' || NEW.name,
           'anabranch.' || kind || '.' || {_SQLITE_HYPHENATED}
    FROM (
        SELECT CASE WHEN EXISTS (SELECT 1 FROM flow_run WHERE flow_run.id = NEW.run_id)
               THEN 'flow-run' ELSE 'task-run' END AS kind
    )
    WHERE true
    ON CONFLICT (id) DO NOTHING;
END
"""

# On PostgreSQL one INSERT per statement over the rows it added (a batch of 3,000 states
# costs one join, not 3,000 trigger calls).
_POSTGRESQL_FUNCTION = """
CREATE FUNCTION anabranch_state_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event (id, occurred, event, resource_id)
    SELECT s.id, s.timestamp,
           'anabranch.' || CASE WHEN f.id IS NULL THEN 'task-run' ELSE 'flow-run' END
               || '.' || s.name,
           'anabranch.' || CASE WHEN f.id IS NULL THEN 'task-run' ELSE 'flow-run' END
               || '.' || s.run_id::text
    FROM new_states AS s LEFT JOIN flow_run AS f ON f.id = s.run_id
    ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END
$$
"""
_POSTGRESQL_TRIGGER = """
CREATE TRIGGER run_state_event AFTER INSERT ON run_state
REFERENCING NEW TABLE AS new_states
FOR EACH STATEMENT EXECUTE FUNCTION anabranch_state_events()
"""


def upgrade() -> None:
    op.create_table(
        "event",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("occurred", _TIMESTAMP, nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("resource_id", sa.Text(), nullable=False),
        sa.Column("resource", _JSON, nullable=True),
        sa.Column("related", _JSON, nullable=True),
        sa.Column("payload", _JSON, nullable=True),
        sa.Column("tx", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_event"),
        sa.UniqueConstraint("id", name="uq_event_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_event_resource_id_occurred", "event", ["resource_id", "occurred"])
        op.create_index("ix_event_tx_seq", "event", ["tx", "seq"])
    op.create_table(
        "automation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("trigger", _JSON, nullable=False),
        sa.Column("actions", _JSON, nullable=False),
        sa.Column("created", _TIMESTAMP, nullable=False),
        sa.Column("updated", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_automation"),
        sa.UniqueConstraint("name", name="uq_automation_name"),
    )
    op.create_table(
        "automation_bucket",
        sa.Column("automation_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("opened", _TIMESTAMP, nullable=False),
        sa.Column("deadline", _TIMESTAMP, nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("event", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("automation_id", "key", name="pk_automation_bucket"),
    )
    op.create_index("ix_automation_bucket_deadline", "automation_bucket", ["deadline"])
    op.create_table(
        "automation_firing",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("automation_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("fired", _TIMESTAMP, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("event", _JSON, nullable=True),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_automation_firing"),
        sa.UniqueConstraint(
            "automation_id", "key", name="uq_automation_firing_automation_id_key"
        ),
    )
    op.create_index(
        "ix_automation_firing_automation_id_fired", "automation_firing",
        ["automation_id", "fired"],
    )
    op.create_index("ix_automation_firing_flow_run_id", "automation_firing", ["flow_run_id"])
    op.create_table(
        "automation_action",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("firing_id", sa.Uuid(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("action", _JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt", _TIMESTAMP, nullable=False),
        sa.Column("claimed_until", _TIMESTAMP, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished", _TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_automation_action"),
    )
    op.create_index(
        "ix_automation_action_status_next_attempt", "automation_action",
        ["status", "next_attempt"],
    )
    op.create_index("ix_automation_action_firing_id", "automation_action", ["firing_id"])
    op.create_table(
        "service_state",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=True),
        sa.Column("expires_at", _TIMESTAMP, nullable=True),
        sa.Column("position", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_service_state"),
    )
    with op.batch_alter_table("worker") as batch:
        batch.add_column(
            sa.Column("offline", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("deployment") as batch:
        batch.add_column(sa.Column("last_polled", _TIMESTAMP, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE event ALTER COLUMN tx SET DEFAULT "
                   "(pg_current_xact_id()::text::bigint)")
        op.execute(_POSTGRESQL_FUNCTION)
        op.execute(_POSTGRESQL_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS run_state_event" + (
        " ON run_state" if op.get_bind().dialect.name == "postgresql" else ""
    ))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS anabranch_state_events()")
    with op.batch_alter_table("deployment") as batch:
        batch.drop_column("last_polled")
    with op.batch_alter_table("worker") as batch:
        batch.drop_column("offline")
    for table in (
        "service_state", "automation_action", "automation_firing", "automation_bucket",
        "automation", "event",
    ):
        op.drop_table(table)
