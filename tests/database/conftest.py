"""Real databases per test: a SQLite file always, and PostgreSQL when a server is given.

Set ANABRANCH_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)
to run every store test against PostgreSQL too; each test gets a fresh database there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from anabranch.client.embedded import EmbeddedClient
from anabranch.database import get_engine

POSTGRES_URL = os.environ.get("ANABRANCH_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'anabranch.db'}"
    elif not POSTGRES_URL:
        pytest.skip("set ANABRANCH_TEST_POSTGRES_URL to also run against PostgreSQL")
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
