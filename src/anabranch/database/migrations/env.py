"""Alembic environment for anabranch's one migration tree.

``anabranch.database.upgrade`` passes an open connection (inside its locked transaction) in
``config.attributes["connection"]``. Run from the alembic command line instead
(``alembic -c src/anabranch/database/migrations/alembic.ini revision --autogenerate -m ...``),
it connects to the database the current settings point at.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from anabranch.database.engine import get_engine
from anabranch.database.models import metadata
from anabranch.settings import get_settings


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite can not ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():
        raise SystemExit("anabranch migrations run against a live database; drop --sql.")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    with get_engine(get_settings().resolved_database_url).begin() as connection:
        _run(connection)


_main()
