"""Flow runs, task runs, state history and logs.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Types are spelled out here, not imported from models.py: a migration is a frozen record.
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TIMESTAMP = sa.DateTime(timezone=True)


def _run_columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("parameters", _JSON, nullable=False),
        sa.Column("tags", _JSON, nullable=False),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("start_time", _TIMESTAMP, nullable=True),
        sa.Column("end_time", _TIMESTAMP, nullable=True),
        sa.Column("created", _TIMESTAMP, nullable=False),
        sa.Column("updated", _TIMESTAMP, nullable=False),
        sa.Column("state_id", sa.Uuid(), nullable=True),
        sa.Column("state_type", sa.String(16), nullable=True),
        sa.Column("state_name", sa.Text(), nullable=True),
        sa.Column("state_message", sa.Text(), nullable=True),
        sa.Column("state_timestamp", _TIMESTAMP, nullable=True),
        sa.Column("result_ref", _JSON, nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "flow_run",
        *_run_columns(),
        sa.Column("flow_name", sa.Text(), nullable=False),
        sa.Column("flow_version", sa.Text(), nullable=True),
        sa.Column("parent_flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("parent_task_run_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_flow_run"),
    )
    op.create_index("ix_flow_run_created", "flow_run", ["created"])
    op.create_index("ix_flow_run_flow_name", "flow_run", ["flow_name"])
    op.create_index("ix_flow_run_parent_flow_run_id", "flow_run", ["parent_flow_run_id"])
    op.create_index("ix_flow_run_state_type", "flow_run", ["state_type"])

    op.create_table(
        "task_run",
        *_run_columns(),
        sa.Column("task_key", sa.Text(), nullable=False),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("cache_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_task_run"),
    )
    op.create_index("ix_task_run_flow_run_id", "task_run", ["flow_run_id"])

    op.create_table(
        "run_state",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("timestamp", _TIMESTAMP, nullable=False),
        sa.Column("result_ref", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_run_state"),
    )
    op.create_index("ix_run_state_run_id_timestamp", "run_state", ["run_id", "timestamp"])

    op.create_table(
        "log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("task_run_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("timestamp", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_log"),
    )
    op.create_index("ix_log_flow_run_id_timestamp", "log", ["flow_run_id", "timestamp"])
    op.create_index("ix_log_task_run_id", "log", ["task_run_id"])


def downgrade() -> None:
    op.drop_table("log")
    op.drop_table("run_state")
    op.drop_table("task_run")
    op.drop_table("flow_run")
