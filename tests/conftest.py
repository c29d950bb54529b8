"""Every test gets its own ANABRANCH_HOME (store and results) in a temporary folder.

``--transport`` runs the same tests through a real `anabranch server start` process instead
of the embedded store: ``server-sqlite`` (a fresh SQLite file) or ``server-postgresql`` (a
fresh PostgreSQL database), one server per test, selected with ANABRANCH_API_URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from anabranch.client import get_client
from anabranch.client.recorder import flush_all
from anabranch.testing import temporary_home
from cli_runner import Result, run_main
from server_harness import POSTGRES_URL, postgres_reachable, start_server

TRANSPORTS = ("embedded", "server-sqlite", "server-postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--transport",
        choices=TRANSPORTS,
        default="embedded",
        help="run the tests on the embedded store or through a real server process",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"anabranch transport: {config.getoption('--transport')}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "embedded_only: checks the embedded store itself (skipped through a server)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--transport") == "embedded":
        return
    skip = pytest.mark.skip(reason="checks the embedded store itself, not the transport")
    for item in items:
        if item.get_closest_marker("embedded_only"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    transport = request.config.getoption("--transport")
    with temporary_home(tmp_path / "home") as path:
        if transport == "embedded":
            yield path
            return
        with _server_for_this_test(transport, tmp_path) as api_url:
            os.environ["ANABRANCH_API_URL"] = api_url
            try:
                yield path
            finally:
                flush_all()
                os.environ.pop("ANABRANCH_API_URL", None)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """`anabranch ARGS...` through the console script's own main() in this process."""

    def run(*args: str) -> Result:
        return run_main(args, capsys, monkeypatch)

    return run


@pytest.fixture
def client(home: Path):
    """A client on this test's store; reading through it first stores what is buffered."""
    flush_all()
    return get_client()


class _server_for_this_test:  # noqa: N801 - used as a context manager
    """A server on a fresh database for one test; the database is dropped afterwards."""

    def __init__(self, transport: str, folder: Path) -> None:
        self.transport, self.folder = transport, folder
        self.database: str | None = None

    def __enter__(self) -> str:
        if self.transport == "server-sqlite":
            database_url = f"sqlite:///{self.folder / 'server-store' / 'anabranch.db'}"
        else:
            database_url = self._fresh_postgres_database()
        self.server = start_server(database_url, self.folder / "server")
        return self.server.url

    def __exit__(self, *exc_info: object) -> None:
        self.server.stop()
        if self.database is not None:
            admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            admin.dispose()

    def _fresh_postgres_database(self) -> str:
        problem = postgres_reachable()
        if problem is not None:
            pytest.fail(f"--transport server-postgresql needs PostgreSQL at {POSTGRES_URL}: "
                        f"{problem}")
        self.database = f"anabranch_test_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.database}"')
        admin.dispose()
        return sa.make_url(POSTGRES_URL).set(database=self.database).render_as_string(
            hide_password=False
        )


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
