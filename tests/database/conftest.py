"""Real databases per test: a SQLite file, and a fresh PostgreSQL database.

PostgreSQL is the local server (postgresql+psycopg://postgres@127.0.0.1:5432/test) unless
ANABRANCH_TEST_POSTGRES_URL names another. Its cases skip when it is unreachable, and fail
instead in CI (CI=true), which must run them.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from anabranch.client.embedded import EmbeddedClient
from anabranch.database import get_engine
from server_harness import POSTGRES_URL, postgres_reachable


@functools.cache
def _postgres_problem() -> str | None:
    return postgres_reachable()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'anabranch.db'}"
    elif problem := _postgres_problem():
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable ({problem})"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must run the PostgreSQL cases.")
        pytest.skip(message + "; set ANABRANCH_TEST_POSTGRES_URL to run these cases.")
    else:
        yield from _fresh_postgres_database(POSTGRES_URL)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'anabranch.db'}"


@pytest.fixture
def store(database_url: str) -> EmbeddedClient:
    return EmbeddedClient(database_url)


def _fresh_postgres_database(server_url: str) -> Iterator[str]:
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"anabranch_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.dispose()
