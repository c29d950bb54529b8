"""Child processes (``slot_child.py`` holds or waits for slots; ``shared_file_writer.py``
appends to a shared file), and waiting for a condition with a deadline instead of sleeping."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from anabranch.testing import wait_until as wait_until_deadline

SLOT_CHILD = Path(__file__).with_name("slot_child.py")


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """``wait_until(condition, timeout=20, what="...")``: anabranch.testing.wait_until."""
    return wait_until_deadline


class Child:
    """One child process; its output lines are read by a thread into a queue."""

    def __init__(self, script: Path, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def expect(self, word: str, timeout: float = 30.0) -> str:
        """The next output line starting with ``word`` (earlier lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {word!r} from the child within {timeout:g} s") from None
            if line is None:
                self.wait(timeout=10)
                raise AssertionError(
                    f"the child exited ({self.process.returncode}) before printing {word!r}:\n"
                    + "".join(self.stderr)
                )
            if line.startswith(word):
                return line

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait(self, timeout: float = 30.0) -> int:
        """The exit status, once the process has exited and all its output is read."""
        status = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return status


@pytest.fixture
def spawn(home: Path) -> Iterator[Callable[..., Child]]:
    """``spawn(*args, script=SLOT_CHILD, lease_seconds=None)`` starts a child on this test's
    store; every child still running at the end of the test is killed."""
    children: list[Child] = []

    def start(*args: str, script: Path = SLOT_CHILD, lease_seconds: float | None = None) -> Child:
        env = {**os.environ, "ANABRANCH_HOME": str(home)}
        if lease_seconds is not None:
            env["ANABRANCH_CONCURRENCY_LEASE_SECONDS"] = str(lease_seconds)
        child = Child(script, list(args), env)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.process.poll() is None:
            child.process.kill()
        child.process.wait(timeout=10)
