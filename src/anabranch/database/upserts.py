"""INSERT statements that can say what to do on a conflict, for the databases anabranch
stores in: SQLAlchemy has them per dialect only."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from anabranch.exceptions import AnabranchError

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def upsert_into(dialect: str, table: sa.Table) -> Any:
    """``insert(table)`` of ``dialect`` ("sqlite" or "postgresql"), which has
    ``on_conflict_do_nothing`` and ``on_conflict_do_update``."""
    try:
        return _INSERTS[dialect](table)
    except KeyError:
        raise AnabranchError(
            f"anabranch stores runs in SQLite or PostgreSQL, not {dialect}; point "
            "ANABRANCH_DATABASE_URL at one of those."
        ) from None
