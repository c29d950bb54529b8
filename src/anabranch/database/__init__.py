"""Storage: one engine per URL, the tables, and the one migration tree (SQLite, PostgreSQL)."""

from anabranch.database import models
from anabranch.database.engine import get_engine, write_transaction
from anabranch.database.migrate import HEAD, upgrade

__all__ = ["HEAD", "get_engine", "models", "upgrade", "write_transaction"]
