"""One SQLAlchemy engine per database URL per process, set up for several writers at once.

SQLite is the default store and is shared by every process on the machine (a flow's
background writer, a worker, the CLI), so its connections use WAL (readers never block the
writer), a 30 s busy timeout (writers queue instead of failing) and transactions whose
BEGIN we issue ourselves, so a write transaction can take the write lock up front.

A SQLite store that can never work (its folder or file not writable, a file that is not a
database or is damaged) is refused at once with StoreUnusable naming the file and the fix,
never retried. The file and its folder are created private (``anabranch._private``).
"""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydantic_core
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from anabranch import _clock
from anabranch._private import private_dir, private_file
from anabranch.exceptions import AnabranchError, StoreUnusable
from anabranch.schemas.text import storable_json

_WRITE_OPTION = "anabranch_write"
_BUSY_TIMEOUT_MS = 30_000
# The first bytes of every SQLite database file (an empty file is a database yet to be made).
_SQLITE_HEADER = b"SQLite format 3\x00"

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def get_engine(url: str) -> Engine:
    """The process's engine for ``url``, created on first use; safe to call from any thread."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create_engine(url)
        return engine


@contextmanager
def write_transaction(url: str) -> Iterator[Connection]:
    """A transaction committed on success that holds the write lock from its first statement.

    On SQLite this is ``BEGIN IMMEDIATE``: a writer waits up front (busy timeout) for another
    writer, instead of failing with "database is locked" when it reads first and then finds
    its snapshot stale. Other databases lock rows as they go and need nothing special.
    """
    with get_engine(url).connect() as conn:
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            yield conn


def _create_engine(url: str) -> Engine:
    try:
        sa_url = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise AnabranchError(
            f"{url!r} is not a database URL. Set ANABRANCH_DATABASE_URL to one like "
            "sqlite:////path/to/anabranch.db or postgresql+psycopg://user@host/dbname."
        ) from exc
    options: dict[str, Any] = {"json_serializer": _json_dumps}
    is_sqlite = sa_url.get_backend_name() == "sqlite"
    path = _sqlite_file(sa_url.database) if is_sqlite else None
    if path is not None:
        _prepare_sqlite_file(path)
    if not is_sqlite:
        options["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(sa_url, **options)
    except ModuleNotFoundError as exc:
        raise AnabranchError(
            f"The database URL {sa_url.render_as_string(hide_password=True)} needs the "
            f"{exc.name!r} driver, which is not installed; install it (pip install {exc.name})."
        ) from exc
    except sa.exc.ArgumentError as exc:
        raise AnabranchError(
            f"{sa_url.render_as_string(hide_password=True)} is not a database URL SQLAlchemy "
            f"can open ({exc}); use sqlite:///... or postgresql+psycopg://..."
        ) from exc
    if is_sqlite:
        sa.event.listen(engine, "connect", _configure_sqlite_connection)
        sa.event.listen(engine, "begin", _begin_sqlite_transaction)
    if path is not None:
        sa.event.listen(engine, "handle_error", functools.partial(_explain_sqlite_error, path))
    return engine


def _sqlite_file(database: str | None) -> Path | None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def _prepare_sqlite_file(path: Path) -> None:
    """Create the file (and its folder) private before SQLite opens it, so its -wal and
    -shm files, which SQLite gives the file's mode, are private too; StoreUnusable at once
    for a store that can never work."""
    try:
        private_dir(path.parent)
    except OSError as exc:
        raise _unwritable("folder", path.parent, exc) from exc
    try:
        private_file(path)
        with open(path, "r+b") as fh:
            header = fh.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise _unwritable("database", path, exc) from exc
    if not os.access(path.parent, os.W_OK | os.X_OK):  # where the -wal and -shm files go
        raise _unwritable("folder", path.parent, _denied())
    # A prefix is a file another process is writing the first page of right now.
    if not _SQLITE_HEADER.startswith(header.rstrip(b"\x00")):
        raise _damaged(path, "file is not a database")


def _explain_sqlite_error(path: Path, context: sa.engine.ExceptionContext) -> Exception | None:
    """A SQLite error that retrying can not heal, as StoreUnusable naming the file; None
    leaves the error as it is (a locked database, a full disk)."""
    error = context.original_exception
    message = str(error)
    if isinstance(error, sqlite3.OperationalError):
        if "readonly database" in message:
            return _unwritable("database", path, PermissionError(errno.EACCES, message))
        if "unable to open" in message:
            return _diagnose(path)
        return None
    if isinstance(error, sqlite3.DatabaseError) and (
        "not a database" in message or "malformed" in message
    ):
        return _damaged(path, message)
    return None


def _diagnose(path: Path) -> StoreUnusable | None:
    """Why SQLite could not open ``path``, if it is the folder or the file."""
    folder = path.parent
    if not folder.is_dir():
        return _unwritable("folder", folder, FileNotFoundError(errno.ENOENT, "no such folder"))
    if not os.access(folder, os.W_OK | os.X_OK):
        return _unwritable("folder", folder, _denied())
    if path.is_dir():
        return _unwritable("database", path, IsADirectoryError(errno.EISDIR, "a folder"))
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return _unwritable("database", path, _denied())
    return None


def _denied() -> PermissionError:
    return PermissionError(errno.EACCES, os.strerror(errno.EACCES))


def _unwritable(what: str, path: Path, exc: OSError) -> StoreUnusable:
    reason = exc.strerror or str(exc)
    if exc.filename and Path(exc.filename) != path:
        reason = f"{reason}: {exc.filename}"
    return StoreUnusable(
        f"The anabranch {what} {path} can not be created or written ({reason}); make it "
        "writable, or point ANABRANCH_HOME (or ANABRANCH_DATABASE_URL) to a place you can "
        "write."
    )


def _damaged(path: Path, detail: str) -> StoreUnusable:
    return StoreUnusable(
        f"The anabranch database {path} is damaged or not a SQLite database ({detail}); move "
        f"it aside (mv {path} {path}.corrupt) and a new, empty one is created on next use."
    )


def _configure_sqlite_connection(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # Autocommit at the driver level: pysqlite's own implicit BEGIN comes late and can not be
    # IMMEDIATE, so _begin_sqlite_transaction issues it instead.
    dbapi_connection.isolation_level = None
    dbapi_connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    _switch_to_wal(dbapi_connection)
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
    # A statement that fires a trigger (a state's event) keeps a journal of its own; on
    # disk, a batch's 3,000 of them were most of what events cost the writer.
    dbapi_connection.execute("PRAGMA temp_store=MEMORY")


def _switch_to_wal(dbapi_connection: sqlite3.Connection) -> None:
    # WAL is recorded in the file, so only a fresh file needs switching. The switch takes an
    # exclusive lock that SQLite does not wait for (the busy timeout does not apply), so
    # processes opening a new file together retry until one of them has switched it.
    backoff = _clock.Backoff(_BUSY_TIMEOUT_MS / 1000, first=0.005, ceiling=0.1)
    while True:
        try:
            if dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            # Only a lock can clear; a read-only or unopenable file fails now.
            if "locked" not in str(exc) or not backoff.wait():
                raise


def _begin_sqlite_transaction(conn: Connection) -> None:
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _json_dumps(value: Any) -> str:
    # Parameters may hold anything a user passed; values JSON can not express are stored as
    # their str() so one odd parameter never loses a whole batch of records, and text a
    # database would refuse (NUL, lone surrogates) is replaced alike on every database.
    return storable_json(value, _plain_json_dumps)


def _plain_json_dumps(value: Any) -> str:
    return pydantic_core.to_json(value, serialize_unknown=True).decode()


def _forget_engines_after_fork() -> None:
    # A forked child must not share the parent's pooled connections (nor a lock another
    # parent thread held at fork time); it opens its own on next use.
    global _lock
    _lock = threading.Lock()
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


if hasattr(os, "register_at_fork"):  # no fork on Windows
    os.register_at_fork(after_in_child=_forget_engines_after_fork)
