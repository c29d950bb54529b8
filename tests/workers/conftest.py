"""A deployment platform for one test: a real server on loopback, flows in files, and
worker processes started like users start them (`anabranch worker start`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from anabranch.client import get_client
from anabranch.client.recorder import flush_all
from server_harness import ANABRANCH, Server, clean_env, start_server

# Workers, children and the server notice a dead process within a few of these.
HEARTBEAT_SECONDS = "3"


@dataclass
class Platform:
    server: Server
    home: Path
    folder: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return clean_env(
            ANABRANCH_API_URL=self.server.url,
            ANABRANCH_HOME=str(self.home),
            ANABRANCH_HEARTBEAT_SECONDS=HEARTBEAT_SECONDS,
        )

    def write(self, name: str, source: str) -> Path:
        path = self.folder / name
        path.write_text(textwrap.dedent(source))
        return path

    def cli(
        self, *args: str, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [ANABRANCH, *args], cwd=self.folder, env={**self.env, **env}, capture_output=True,
            text=True, timeout=120,
        )
        if check and result.returncode != 0:
            pytest.fail(f"anabranch {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def deploy(self, entrypoint: str, name: str, pool: str, *options: str, **env: str) -> None:
        self.cli("deploy", entrypoint, "--name", name, "--pool", pool, *options, **env)

    def start_worker(self, pool: str, *options: str) -> subprocess.Popen[bytes]:
        log = (self.folder / f"worker-{len(self.workers)}.log").open("wb")
        worker = subprocess.Popen(
            [ANABRANCH, "worker", "start", "--pool", pool, *options],
            cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        self.workers.append(worker)
        return worker

    def run_python(
        self, script: Path, timeout: float = 180, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script)], cwd=self.folder, env={**self.env, **env},
            capture_output=True, text=True, timeout=timeout,
        )

    def worker_logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace") for path in sorted(self.folder.glob("worker-*.log"))
        )

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=20)
        self.server.stop()


@pytest.fixture
def platform(home: Path, tmp_path: Path) -> Iterator[Platform]:
    """A server on SQLite with fast heartbeats; this test's client talks to it too."""
    server = start_server(
        f"sqlite:///{tmp_path / 'server-store' / 'anabranch.db'}", tmp_path / "server",
        ANABRANCH_HEARTBEAT_SECONDS=HEARTBEAT_SECONDS,
    )
    folder = tmp_path / "project"
    folder.mkdir()
    platform = Platform(server, home, folder)
    os.environ["ANABRANCH_API_URL"] = server.url
    try:
        yield platform
    finally:
        flush_all()
        os.environ.pop("ANABRANCH_API_URL", None)
        platform.stop()


@pytest.fixture
def client(platform: Platform):
    flush_all()
    return get_client()
