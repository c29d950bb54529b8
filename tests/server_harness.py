"""Start and stop real `anabranch server start` processes, and find PostgreSQL: the one at
ANABRANCH_TEST_POSTGRES_URL, by default the local server as user postgres."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from anabranch.client.http import HTTPClient
from anabranch.testing import wait_until

ANABRANCH = str(Path(sys.executable).with_name("anabranch"))
POSTGRES_URL = os.environ.get(
    "ANABRANCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
STARTUP_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any ANABRANCH_* setting, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANABRANCH_")}
    env.update(values)
    return env


@dataclass
class Server:
    """A running `anabranch server start` and where it listens."""

    process: subprocess.Popen[bytes]
    url: str
    database_url: str
    log: Path
    api_key: str | None = None
    clients: list[HTTPClient] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self, **options) -> HTTPClient:
        client = HTTPClient(self.url, api_key=self.api_key, **options)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def start_server(
    database_url: str,
    folder: Path,
    *,
    api_key: str | None = None,
    port: int | None = None,
    **settings: str,
) -> Server:
    """Start a server and wait (with a deadline) until /api/health says it is ready;
    ``settings`` are more ANABRANCH_* variables for it."""
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"server-{port}.log"
    env = clean_env(ANABRANCH_HOME=str(folder / "home"), ANABRANCH_DATABASE_URL=database_url)
    env.update(settings)
    if api_key:
        env["ANABRANCH_API_KEY"] = api_key
    with log.open("wb") as out:
        process = subprocess.Popen(
            [ANABRANCH, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Server(process, f"http://127.0.0.1:{port}/api", database_url, log, api_key)
    wait_until_ready(server)
    return server


def wait_until_ready(server: Server) -> None:
    def ready() -> bool:
        if server.process.poll() is not None:
            pytest.fail(f"The server exited with {server.process.returncode}:\n{server.output()}")
        try:
            return httpx.get(f"{server.url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout=STARTUP_SECONDS, what="the server to answer /health")
    except AssertionError:
        server.stop()
        pytest.fail(f"The server was not ready within {STARTUP_SECONDS} s:\n{server.output()}")


def postgres_reachable() -> str | None:
    """None if PostgreSQL answers at POSTGRES_URL, else why not."""
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        engine.dispose()
    return None
