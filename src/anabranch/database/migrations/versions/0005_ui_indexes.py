"""Indexes for the web UI: runs by when they were last written (its live view finds what
changed since its last look without reading every run), and flow runs by parent and
creation (root runs and a run's children, newest first, without sorting them all).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_flow_run_updated", "flow_run", ["updated"])
    op.create_index("ix_task_run_updated", "task_run", ["updated"])
    op.create_index(
        "ix_flow_run_parent_flow_run_id_created", "flow_run", ["parent_flow_run_id", "created"]
    )
    op.drop_index("ix_flow_run_parent_flow_run_id", table_name="flow_run")


def downgrade() -> None:
    op.create_index("ix_flow_run_parent_flow_run_id", "flow_run", ["parent_flow_run_id"])
    op.drop_index("ix_flow_run_parent_flow_run_id_created", table_name="flow_run")
    op.drop_index("ix_task_run_updated", table_name="task_run")
    op.drop_index("ix_flow_run_updated", table_name="flow_run")
