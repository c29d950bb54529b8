"""The one migration tree: it matches the models, and opening a store migrates it once."""

from __future__ import annotations

import subprocess
import sys

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from anabranch.database import HEAD, get_engine, models, upgrade
from anabranch.database.migrate import MIGRATIONS_DIR

UPGRADE_WHEN_RELEASED = """
import sys
from anabranch.database import upgrade
print("ready", flush=True)
sys.stdin.readline()
upgrade(sys.argv[1])
"""


def test_head_names_the_newest_migration() -> None:
    assert ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head() == HEAD


def test_the_migrations_build_exactly_the_tables_the_models_describe(database_url: str) -> None:
    upgrade(database_url)

    with get_engine(database_url).connect() as conn:

        def built_here(item: object, name: str, kind: str, reflected: bool, other: object) -> bool:
            # An index the models make on one database only (``ddl_if``) is not on the other.
            wanted = getattr(item if not reflected else other, "_ddl_if", None)
            return wanted is None or wanted.dialect == conn.dialect.name

        context = MigrationContext.configure(conn, opts={"include_object": built_here})
        assert compare_metadata(context, models.metadata) == []


def test_a_sqlite_store_uses_wal_so_readers_never_wait_for_the_writer(sqlite_url: str) -> None:
    with get_engine(sqlite_url).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_processes_opening_a_fresh_database_at_once_migrate_it_once(database_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADE_WHEN_RELEASED, database_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()

    assert [proc.wait(timeout=60) for proc in procs] == [0, 0, 0, 0]
    with get_engine(database_url).connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [(HEAD,)]


def test_opening_a_database_already_at_head_does_not_load_alembic(database_url: str) -> None:
    upgrade(database_url)
    check = (
        "import sys; from anabranch.database import upgrade; upgrade(sys.argv[1]); "
        "assert 'alembic' not in sys.modules, 'alembic was imported'"
    )

    subprocess.run([sys.executable, "-c", check, database_url], check=True)
