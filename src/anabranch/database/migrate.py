"""Bring a database to the newest schema, once per process and cheaply when already there."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anabranch.database.engine import get_engine, write_transaction
from anabranch.exceptions import AnabranchError

# The newest revision in migrations/versions; a test keeps the two in step. Knowing it
# without loading alembic (~150 ms of imports) keeps the at-head check to one query.
HEAD = "0006"

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Any number; taken by every process that migrates a PostgreSQL database.
_PG_MIGRATION_LOCK_KEY = 0x616E6162

_at_head: set[str] = set()
_at_head_lock = threading.Lock()


def upgrade(url: str) -> None:
    """Migrate the database at ``url`` to HEAD.

    Safe when several processes open a fresh database at the same moment: the migration runs
    inside a transaction holding the database's write lock (SQLite) or an advisory lock
    (PostgreSQL) and re-checks the revision first, so the others find it done.
    """
    if url in _at_head:
        return
    with _at_head_lock:
        if url in _at_head:
            return
        with get_engine(url).connect() as conn:
            current = _revision_or_none(conn)
        if current != HEAD:
            _migrate(url)
        _at_head.add(url)


def _revision_or_none(conn: Connection) -> str | None:
    try:
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DBAPIError:  # no alembic_version table yet: a fresh database
        return None


def _migrate(url: str) -> None:
    # Imported here, not at the top: only a database that needs migrating pays for alembic.
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with write_transaction(url) as conn:
        if conn.dialect.name == "postgresql":
            lock = sa.text("SELECT pg_advisory_xact_lock(:key)")
            conn.execute(lock, {"key": _PG_MIGRATION_LOCK_KEY})
        if sa.inspect(conn).has_table("alembic_version") and _revision_or_none(conn) == HEAD:
            return  # another process migrated it while we waited for the lock
        config.attributes["connection"] = conn
        try:
            command.upgrade(config, "head")
        except CommandError as exc:
            raise AnabranchError(
                f"The database {conn.engine.url.render_as_string(hide_password=True)} could not "
                f"be migrated ({exc}). If a newer anabranch created it, upgrade anabranch."
            ) from exc
