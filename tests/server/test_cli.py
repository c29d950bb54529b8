"""`anabranch server start` and `anabranch database upgrade` as a user types them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from anabranch.database import HEAD
from server_harness import ANABRANCH, Server, clean_env, free_port


def anabranch(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ANABRANCH, *args], env=clean_env(**env), capture_output=True, text=True, timeout=120
    )


def test_server_start_says_where_it_listens_and_which_database(server: Server) -> None:
    output = server.output()
    shown = sa.make_url(server.database_url).render_as_string(hide_password=True)

    assert f"listening on {server.url}" in output
    assert f"database {shown}" in output


def test_server_start_on_an_unreachable_database_fails_with_a_message(tmp_path: Path) -> None:
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"

    result = anabranch(
        "server", "start", "--port", str(free_port()),
        ANABRANCH_DATABASE_URL=unreachable, ANABRANCH_HOME=str(tmp_path),
    )

    assert result.returncode == 1
    assert "could not be opened or migrated" in result.stderr
    assert "Traceback" not in result.stderr


def test_database_upgrade_creates_the_newest_schema_and_is_safe_to_repeat(
    tmp_path: Path,
) -> None:
    for _ in range(2):
        result = anabranch("database", "upgrade", ANABRANCH_HOME=str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert f"is at revision {HEAD}" in result.stdout
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'anabranch.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    engine.dispose()


def test_the_cli_and_the_core_import_neither_the_server_nor_its_libraries() -> None:
    code = (
        "import sys, anabranch, anabranch.cli, anabranch.client\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'httpx', "
        "'anabranch.server') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )

    assert result.stdout.strip() == "[]"
