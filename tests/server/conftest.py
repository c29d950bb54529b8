"""Real `anabranch server start` processes on free loopback ports, over SQLite and PostgreSQL:
one server per database kind per session, and throwaway PostgreSQL databases dropped at the
end. The PostgreSQL cases skip when it is unreachable, and fail instead in CI (CI=true).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from anabranch.client.http import HTTPClient
from anabranch.client.recorder import flush_all
from server_harness import POSTGRES_URL, Server, postgres_reachable, start_server


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    problem = postgres_reachable()
    if problem is not None:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable ({problem})"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must run the PostgreSQL cases.")
        pytest.skip(message + "; set ANABRANCH_TEST_POSTGRES_URL to run these cases.")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def new_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], str]]:
    """Make a fresh database of a kind ("sqlite" or "postgresql"); all dropped at the end."""
    created: list[str] = []
    admin: sa.Engine | None = None

    def make(kind: str) -> str:
        nonlocal admin
        if kind == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('store') / 'anabranch.db'}"
        server_url = request.getfixturevalue("postgres_server_url")
        if admin is None:
            admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
        name = f"anabranch_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        created.append(name)
        return sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)

    yield make
    if admin is not None:
        with admin.connect() as conn:
            for name in created:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest,
    new_database: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """One server per database kind for the session; tests tell their runs apart by name."""
    database_url = new_database(request.param)
    running = start_server(database_url, tmp_path_factory.mktemp(f"server-{request.param}"))
    yield running
    running.stop()


@pytest.fixture
def api(server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """This test's process (and the subprocesses it starts) use ``server``."""
    monkeypatch.setenv("ANABRANCH_API_URL", server.url)
    yield server
    flush_all()


@pytest.fixture
def client(server: Server) -> HTTPClient:
    """An HTTP client of ``server``; reading through it first stores what is buffered."""
    flush_all()
    return server.client()
