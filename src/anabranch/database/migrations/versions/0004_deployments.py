"""Deployments, work pools, work queues and workers; flow runs of deployments; log ids.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("flow_run") as batch:
        batch.add_column(sa.Column("deployment_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("work_pool_name", sa.Text(), nullable=True))
        batch.add_column(sa.Column("work_queue_name", sa.Text(), nullable=True))
        batch.add_column(sa.Column("expected_start_time", _TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("idempotency_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("job_variables", _JSON, nullable=True))
        batch.add_column(sa.Column("worker_name", sa.Text(), nullable=True))
        batch.add_column(sa.Column("infrastructure_pid", sa.Integer(), nullable=True))
        batch.create_index(
            "ix_flow_run_work_pool_name_state_type_expected_start_time",
            ["work_pool_name", "state_type", "expected_start_time"],
        )
        batch.create_index(
            "ix_flow_run_deployment_id_idempotency_key",
            ["deployment_id", "idempotency_key"],
            unique=True,
        )
    with op.batch_alter_table("log") as batch:
        batch.add_column(sa.Column("record_id", sa.Uuid(), nullable=True))
        batch.create_index("ix_log_record_id", ["record_id"], unique=True)
    op.create_table(
        "work_pool",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("created", _TIMESTAMP, nullable=False),
        sa.Column("updated", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_work_pool"),
        sa.UniqueConstraint("name", name="uq_work_pool_name"),
    )
    op.create_table(
        "work_queue",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("work_pool_name", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created", _TIMESTAMP, nullable=False),
        sa.Column("updated", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_work_queue"),
        sa.UniqueConstraint("work_pool_name", "name", name="uq_work_queue_work_pool_name_name"),
    )
    op.create_table(
        "deployment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("flow_name", sa.Text(), nullable=False),
        sa.Column("entrypoint", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version", sa.Text(), nullable=True),
        sa.Column("tags", _JSON, nullable=False),
        sa.Column("parameters", _JSON, nullable=False),
        sa.Column("parameter_schema", _JSON, nullable=True),
        sa.Column("work_pool_name", sa.Text(), nullable=True),
        sa.Column("work_queue_name", sa.Text(), nullable=True),
        sa.Column("job_variables", _JSON, nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("schedules", _JSON, nullable=False),
        sa.Column("late_run_policy", sa.String(16), nullable=False),
        sa.Column("max_lateness_seconds", sa.Float(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("created", _TIMESTAMP, nullable=False),
        sa.Column("updated", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deployment"),
        sa.UniqueConstraint("flow_name", "name", name="uq_deployment_flow_name_name"),
    )
    op.create_table(
        "worker",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("work_pool_name", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("limit", sa.Integer(), nullable=True),
        sa.Column("last_heartbeat", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_worker"),
        sa.UniqueConstraint("work_pool_name", "name", name="uq_worker_work_pool_name_name"),
    )


def downgrade() -> None:
    for table in ("worker", "deployment", "work_queue", "work_pool"):
        op.drop_table(table)
    with op.batch_alter_table("log") as batch:
        batch.drop_index("ix_log_record_id")
        batch.drop_column("record_id")
    with op.batch_alter_table("flow_run") as batch:
        batch.drop_index("ix_flow_run_deployment_id_idempotency_key")
        batch.drop_index("ix_flow_run_work_pool_name_state_type_expected_start_time")
        for column in (
            "infrastructure_pid", "worker_name", "job_variables", "idempotency_key",
            "expected_start_time", "work_queue_name", "work_pool_name", "deployment_id",
        ):
            batch.drop_column(column)
