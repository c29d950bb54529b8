"""Flow-run heartbeats, so a run whose process died can be found and marked Crashed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("flow_run") as batch:
        batch.add_column(sa.Column("heartbeat", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("flow_run") as batch:
        batch.drop_column("heartbeat")
