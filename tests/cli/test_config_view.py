"""`anabranch config view` and `anabranch server start` never print a password."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cli_runner import ok
from server_harness import (
    ANABRANCH,
    POSTGRES_URL,
    clean_env,
    free_port,
    postgres_reachable,
    start_server,
)

SECRET = "s3cret-Pa55"



def test_config_view_masks_the_database_password(cli, monkeypatch) -> None:
    monkeypatch.setenv("ANABRANCH_DATABASE_URL", f"postgresql+psycopg://u:{SECRET}@db.example/app")

    shown = ok(cli("config", "view"))

    assert SECRET not in shown
    assert "postgresql+psycopg://u:***@db.example/app" in shown
    assert "Database: postgresql+psycopg://u:***@db.example/app" in shown


def test_config_view_masks_passwords_in_every_url_it_prints(cli, monkeypatch) -> None:
    monkeypatch.setenv("ANABRANCH_DATABASE_URL", f"postgresql://u@db/app?password={SECRET}")
    monkeypatch.setenv("ANABRANCH_API_URL", f"https://ops:{SECRET}@anabranch.example/api")
    monkeypatch.setenv("ANABRANCH_API_KEY", SECRET)
    monkeypatch.setenv("ANABRANCH_RESULTS_STORAGE", f"s3://key:{SECRET}@bucket/results")
    monkeypatch.setenv(
        "ANABRANCH_RESULTS_TRUSTED_STORAGE", f"/srv/results,sftp://me:{SECRET}@host/results"
    )

    shown = ok(cli("config", "view"))

    assert SECRET not in shown
    assert "https://ops:***@anabranch.example/api" in shown
    assert "Database: server at https://ops:***@anabranch.example/api" in shown
    assert "s3://key:***@bucket/results" in shown
    assert "/srv/results,sftp://me:***@host/results" in shown


def test_server_start_on_an_unreachable_database_does_not_print_its_password(
    tmp_path: Path,
) -> None:
    unreachable = f"postgresql+psycopg://u:{SECRET}@127.0.0.1:{free_port()}/nothing"
    unparsable = f"postgresql+psycopg://u:{SECRET}@127.0.0.1:not-a-port/nothing"

    for url in (unreachable, unparsable):
        result = subprocess.run(
            [ANABRANCH, "server", "start", "--port", str(free_port())],
            env=clean_env(ANABRANCH_DATABASE_URL=url, ANABRANCH_HOME=str(tmp_path)),
            capture_output=True,
            text=True,
            timeout=120,
        )

        assert result.returncode == 1
        assert "could not be opened or migrated" in result.stderr
        assert SECRET not in result.stdout + result.stderr


def test_server_start_prints_its_database_without_the_password(tmp_path: Path) -> None:
    problem = postgres_reachable()
    if problem is not None:
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable ({problem})")
    base, _, rest = POSTGRES_URL.partition("@")
    # The test server trusts local connections, so any password is accepted, and printed
    # nowhere.
    with_password = f"{base}:{SECRET}@{rest}"
    server = start_server(with_password, tmp_path)
    try:
        output = server.output()
    finally:
        server.stop()

    assert "anabranch server: database " in output
    assert ":***@" in output
    assert SECRET not in output
