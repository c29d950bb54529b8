"""Real `anabranch server start` processes on free loopback ports, over SQLite and PostgreSQL:
one server per database kind per session, and throwaway PostgreSQL databases dropped at the
end. The PostgreSQL cases skip when it is unreachable, and fail instead in CI (CI=true).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from anabranch.client.http import HTTPClient
from anabranch.client.recorder import flush_all
from server_harness import Server, start_server


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
