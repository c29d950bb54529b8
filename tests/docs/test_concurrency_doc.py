"""docs/concurrency.md stays true: every ```python block runs as a script (after the
`anabranch concurrency-limit create` commands of its section), every command of its CLI
blocks succeeds, and the defaults and commands it names are the real ones."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from anabranch.cli import concurrency_limit
from anabranch.settings import Settings

DOC = Path(__file__).parents[2] / "docs" / "concurrency.md"
ANABRANCH = str(Path(sys.executable).with_name("anabranch"))
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^## (.+)$", re.MULTILINE)


@dataclass
class Block:
    language: str
    code: str
    section: str
    line: int


def blocks(language: str) -> list[Block]:
    text = DOC.read_text()
    headings = [(m.start(), m.group(1)) for m in _HEADING.finditer(text)]
    found = []
    for match in _FENCE.finditer(text):
        section = next((h for at, h in reversed(headings) if at < match.start()), "intro")
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(match.group(1), match.group(2), section, line))
    return [block for block in found if block.language == language]


def commands(block: Block) -> list[list[str]]:
    return [
        shlex.split(line, comments=True)
        for line in block.code.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def creates_in_section(section: str) -> list[list[str]]:
    return [
        command
        for block in blocks("bash")
        if block.section == section
        for command in commands(block)
        if command[:3] == ["anabranch", "concurrency-limit", "create"]
    ]


def run_cli(command: list[str]) -> subprocess.CompletedProcess[str]:
    assert command[0] == "anabranch", command
    return subprocess.run(
        [ANABRANCH, *command[1:]], capture_output=True, text=True, timeout=60
    )


PYTHON_BLOCKS = blocks("python")


def test_the_doc_has_an_example_per_mechanism() -> None:
    sections = {block.section for block in PYTHON_BLOCKS}
    for words in ("max_workers", "concurrency_limit=", "tag", "concurrency()", "rate_limit()",
                  "Leases", "Strict", "Timeouts", "Nested"):
        assert any(words in section for section in sections), words


@pytest.mark.parametrize(
    "block", PYTHON_BLOCKS, ids=[f"line-{block.line}" for block in PYTHON_BLOCKS]
)
def test_python_example_runs(block: Block, tmp_path: Path) -> None:
    for command in creates_in_section(block.section):
        result = run_cli(command)
        assert result.returncode == 0, result.stderr
    script = tmp_path / "example.py"
    script.write_text(block.code)

    # The test's ANABRANCH_HOME (set by the autouse `home` fixture) is inherited.
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, f"docs/concurrency.md line {block.line}:\n{result.stderr}"
    assert "Traceback" not in result.stderr


def test_every_command_of_the_cli_examples_succeeds_in_order() -> None:
    cli_blocks = [block for block in blocks("bash") if "create reports" in block.code]
    assert cli_blocks, "the CLI section's example block"
    for command in commands(cli_blocks[0]):
        result = run_cli(command)
        assert result.returncode == 0, f"{shlex.join(command)}: {result.stderr}"


def test_the_cli_table_lists_exactly_the_real_commands() -> None:
    text = DOC.read_text()
    documented = set(re.findall(r"^\| `(\w+)[ `]", text, re.MULTILINE))
    real = {
        command.name or command.callback.__name__
        for command in concurrency_limit.app.registered_commands
    }
    assert documented == real


def test_the_documented_lease_time_and_setting_are_the_real_ones() -> None:
    text = DOC.read_text()
    field = Settings.model_fields["concurrency_lease_seconds"]
    assert f"The lease lives {field.default:g} seconds" in text
    assert "(`ANABRANCH_CONCURRENCY_LEASE_SECONDS`)" in text
