"""Runs indexed by when they were last written, so the web UI's live view finds what
changed since its last look without reading every run.

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


def downgrade() -> None:
    op.drop_index("ix_task_run_updated", table_name="task_run")
    op.drop_index("ix_flow_run_updated", table_name="flow_run")
