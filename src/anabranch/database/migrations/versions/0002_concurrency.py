"""Concurrency limits, the leases that hold their slots, and waiter tickets.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "concurrency_limit",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("limit", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("slot_decay_per_second", sa.Float(), nullable=False),
        sa.Column("decaying_slots", sa.Float(), nullable=False),
        sa.Column("decayed_at", _TIMESTAMP, nullable=True),
        sa.Column("created", _TIMESTAMP, nullable=False),
        sa.Column("updated", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_concurrency_limit"),
        sa.UniqueConstraint("name", name="uq_concurrency_limit_name"),
    )
    op.create_table(
        "concurrency_lease",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("expires_at", _TIMESTAMP, nullable=False),
        sa.Column("created", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_concurrency_lease"),
    )
    op.create_index("ix_concurrency_lease_expires_at", "concurrency_lease", ["expires_at"])
    op.create_table(
        "concurrency_lease_slot",
        sa.Column("lease_id", sa.Uuid(), nullable=False),
        sa.Column("limit_id", sa.Uuid(), nullable=False),
        sa.Column("occupy", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("lease_id", "limit_id", name="pk_concurrency_lease_slot"),
    )
    op.create_index(
        "ix_concurrency_lease_slot_limit_id", "concurrency_lease_slot", ["limit_id"]
    )
    op.create_table(
        "concurrency_waiter",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("limit_id", sa.Uuid(), nullable=False),
        sa.Column("occupy", sa.Integer(), nullable=False),
        sa.Column("since", _TIMESTAMP, nullable=False),
        sa.Column("expires_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", "limit_id", name="pk_concurrency_waiter"),
    )
    op.create_index(
        "ix_concurrency_waiter_limit_id_since", "concurrency_waiter", ["limit_id", "since"]
    )


def downgrade() -> None:
    op.drop_table("concurrency_waiter")
    op.drop_table("concurrency_lease_slot")
    op.drop_table("concurrency_lease")
    op.drop_table("concurrency_limit")
