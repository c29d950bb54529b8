"""Everything anabranch creates in its home is private to the user (issue 9): folders 0700
and files 0600 whatever the umask, the SQLite database's -wal and -shm files included."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from anabranch._private import open_private, private_dir, private_file
from anabranch.client.embedded import EmbeddedClient
from anabranch.results.storage import ResultStore
from anabranch.testing import temporary_home
from server_harness import clean_env

pytestmark = pytest.mark.embedded_only

# Shared with the group and the world by default, and one that takes the owner's bits too.
UMASKS = [0o022, 0o277]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_flow_in_a_fresh_home_leaves_only_private_folders_and_files(tmp_path: Path) -> None:
    home = tmp_path / "fresh" / "home"
    script = tmp_path / "nightly.py"
    script.write_text(textwrap.dedent(
        """
        import json, os, stat, sys
        from pathlib import Path

        os.umask(0o022)

        from anabranch import flow
        from anabranch.client import get_client
        from anabranch.client.recorder import flush_all

        @flow(persist_result=True)
        def nightly():
            return {"rows": 3}

        nightly()
        flush_all()
        # The engine's pool keeps a connection open, so the -wal and -shm files exist now.
        get_client().read_flow_runs()
        top = Path(sys.argv[1])
        print(json.dumps({
            str(path.relative_to(top)): [path.is_dir(), stat.S_IMODE(path.stat().st_mode)]
            for path in [*top.rglob("*")]
        }))
        """
    ))

    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "fresh")],
        env=clean_env(ANABRANCH_HOME=str(home)), capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert {"home", "home/anabranch.db", "home/anabranch.db-wal", "home/anabranch.db-shm",
            "home/storage"} <= set(found)
    assert [name for name in found if name.startswith("home/storage/")], found
    assert {
        name: oct(found_mode) for name, (is_dir, found_mode) in found.items()
        if found_mode != (0o700 if is_dir else 0o600)
    } == {}
    assert mode(tmp_path / "fresh") == 0o700


@pytest.mark.parametrize("mask", UMASKS, ids=oct)
def test_private_dir_makes_the_folder_and_missing_parents_0700(tmp_path: Path, mask: int) -> None:
    with umask(mask):
        made = private_dir(tmp_path / "a" / "b")

    assert made == tmp_path / "a" / "b"
    assert (mode(tmp_path / "a"), mode(made)) == (0o700, 0o700)


def test_private_dir_leaves_an_existing_folder_as_its_owner_set_it(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o755)

    private_dir(folder)

    assert mode(folder) == 0o755


def test_private_dir_names_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")

    with pytest.raises(NotADirectoryError) as refused:
        private_dir(tmp_path / "afile" / "home")

    assert refused.value.filename == str(tmp_path / "afile")


@pytest.mark.parametrize("mask", UMASKS, ids=oct)
def test_open_private_creates_0600_files(tmp_path: Path, mask: int) -> None:
    with umask(mask):
        with open_private(tmp_path / "batch.json", "w", encoding="utf-8") as fh:
            fh.write("é")
        created = private_file(tmp_path / "empty")

    assert created
    assert mode(tmp_path / "batch.json") == mode(tmp_path / "empty") == 0o600
    assert (tmp_path / "batch.json").read_text(encoding="utf-8") == "é"


def test_open_private_writes_an_existing_file_without_changing_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"one\n")
    path.chmod(0o640)

    with open_private(path, "ab") as fh:
        fh.write(b"two\n")
    assert path.read_bytes() == b"one\ntwo\n"
    with open_private(path, "wb") as fh:
        fh.write(b"three\n")

    assert path.read_bytes() == b"three\n"
    assert mode(path) == 0o640
    assert not private_file(path)
    with pytest.raises(FileExistsError):
        open_private(path, "xb")
    with pytest.raises(ValueError, match="w, a or x"):
        open_private(path, "rb")


def test_a_temporary_home_is_made_private(tmp_path: Path) -> None:
    with umask(0o022), temporary_home(tmp_path / "new" / "home") as home:
        assert mode(home) == mode(home.parent) == 0o700


def test_a_database_outside_the_home_is_created_private_too(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere" / "runs.db"

    with umask(0o022):
        EmbeddedClient(f"sqlite:///{database}").read_flow_runs()

    assert (mode(database.parent), mode(database)) == (0o700, 0o600)
    assert mode(Path(f"{database}-wal")) == mode(Path(f"{database}-shm")) == 0o600


def test_local_result_storage_outside_the_home_is_created_private(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path / "results" / "nightly"))

    with umask(0o022):
        ref = store.write({"rows": 3}, key="k", serializer="json", owner="flow run 'x'")

    assert ref.key == "k"
    assert mode(tmp_path / "results") == mode(tmp_path / "results" / "nightly") == 0o700
    assert mode(tmp_path / "results" / "nightly" / "k") == 0o600
