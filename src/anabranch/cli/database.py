"""`anabranch database upgrade`: migrate the database to the newest schema."""

from __future__ import annotations

import typer

from anabranch._redact import mask_passwords
from anabranch.cli import render
from anabranch.settings import get_settings

app = typer.Typer(help="Manage the database anabranch stores runs in.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command() -> None:
    """Migrate the database to the newest schema.

    The database is ANABRANCH_DATABASE_URL (default: the SQLite file in ANABRANCH_HOME).
    Safe to repeat, and while clients and servers use the database."""
    # Imported here: SQLAlchemy costs every other command its import time for nothing.
    import sqlalchemy as sa

    from anabranch.database import HEAD, upgrade

    url = get_settings().resolved_database_url
    shown = mask_passwords(url)
    try:
        upgrade(url)
    except sa.exc.SQLAlchemyError as exc:
        render.error(f"The database {shown} could not be migrated: {exc}")
        raise typer.Exit(1) from exc
    print(f"Database {shown} is at revision {HEAD} (the newest).")
