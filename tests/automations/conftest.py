"""A real `anabranch server start` per test (automations are the server's), on a fresh
SQLite file or PostgreSQL database, with quick polls and retries; this test's process uses
it (ANABRANCH_API_URL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from anabranch.client.recorder import flush_all
from server_harness import Server, start_server

# Quick looks and retries, so delivery and back-off take tenths of seconds here.
FAST = {
    "ANABRANCH_AUTOMATIONS_POLL_SECONDS": "0.05",
    "ANABRANCH_AUTOMATION_RETRY_SECONDS": "0.2",
    "ANABRANCH_AUTOMATION_ACTION_ATTEMPTS": "3",
    "ANABRANCH_SCHEDULER_SECONDS": "0.5",
}


@pytest.fixture
def automation_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Server]]:
    """Start a server on a fresh database of ``kind`` ("sqlite" or "postgresql"); the
    test's own flows then run through it."""
    started: list[Server] = []

    def start(kind: str = "sqlite", **settings: str) -> Server:
        new_database = request.getfixturevalue("new_database")
        server = start_server(
            new_database(kind), tmp_path_factory.mktemp(f"automations-{kind}"),
            **{**FAST, **settings},
        )
        started.append(server)
        monkeypatch.setenv("ANABRANCH_API_URL", server.url)
        return server

    yield start
    flush_all()
    for server in started:
        server.stop()
