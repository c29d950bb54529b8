"""Run `anabranch ...` through the console script's own ``main()`` in this process: the same
parsing, error handling and exit codes as the installed script, without a Python start-up
per command. Tests that must see the real script run it as a subprocess instead."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from anabranch.cli import main
from server_harness import ANABRANCH


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_main(
    args: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Result:
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["anabranch", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return Result(code, out, err)


def run_script(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The installed console script, on this test's home (inherited from os.environ)."""
    return subprocess.run([ANABRANCH, *args], capture_output=True, text=True, timeout=timeout)


def ok(result: Result | subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_line_error(result: Result | subprocess.CompletedProcess[str]) -> str:
    """The single line a refused command prints on stderr (exit code 1, nothing on stdout)."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ")
    return line
