"""The real databases of ``tests/database`` (a SQLite file, a fresh PostgreSQL database),
for the orchestration tests that write rows."""

from database.conftest import database_url, store

__all__ = ["database_url", "store"]
