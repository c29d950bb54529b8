"""A store per transport and database (embedded and through a real server process, on
SQLite and on PostgreSQL), shared by a module's tests: they tell runs apart by flow name."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from anabranch.client.base import AnabranchClient
from anabranch.client.embedded import EmbeddedClient
from anabranch.database import get_engine
from anabranch.schemas import FlowRun, RecordBatch
from server_harness import POSTGRES_URL, postgres_reachable, start_server


@pytest.fixture(
    scope="module",
    params=["embedded-sqlite", "embedded-postgresql", "server-sqlite", "server-postgresql"],
)
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AnabranchClient]:
    """One store per transport and database for the module; tests tell runs apart by flow."""
    transport, kind = request.param.split("-")
    folder = tmp_path_factory.mktemp(request.param)
    with _database(kind, folder) as database_url:
        if transport == "embedded":
            yield EmbeddedClient(database_url)
            get_engine(database_url).dispose()
            return
        server = start_server(database_url, folder / "server")
        try:
            yield server.client()
        finally:
            server.stop()


class _database:  # noqa: N801 - used as a context manager
    """A fresh database of ``kind``; a PostgreSQL one is dropped afterwards."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.kind, self.folder, self.name = kind, folder, ""

    def __enter__(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.folder / 'store' / 'anabranch.db'}"
        if problem := postgres_reachable():
            message = f"PostgreSQL at {POSTGRES_URL} is unreachable ({problem})"
            if os.environ.get("CI") == "true":
                pytest.fail(message + "; CI must run the PostgreSQL cases.")
            pytest.skip(message)
        self.name = f"anabranch_test_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{self.name}"')
        return sa.make_url(POSTGRES_URL).set(database=self.name).render_as_string(False)

    def __exit__(self, *exc_info: object) -> None:
        if self.name:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    @staticmethod
    def _admin(sql: str) -> None:
        admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(sql)
        admin.dispose()


def store_runs(client: AnabranchClient, *runs: FlowRun) -> None:
    client.write_batch(RecordBatch(flow_runs=list(runs)))
