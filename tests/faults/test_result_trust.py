"""A result reference is input from whoever wrote the store: loading one never runs a
planted file's code.

Each planted file holds a pickle whose loading would create a marker folder, so "the code
did not run" is checked directly, not inferred from the error.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from anabranch import flow
from anabranch.exceptions import SerializationError, UntrustedResultStorage
from anabranch.results import ResultRef
from anabranch.results.storage import ResultStore, load_result
from anabranch.schemas import FlowRun, RecordBatch, State, StateRecord, StateType


class Planted:
    """Unpickling this creates the folder ``marker``: the stand-in for an attacker's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def plant(folder: Path, key: str, marker: Path, header_serializer: str = "cloudpickle") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"serializer": header_serializer, "expires": None}).encode()
    (folder / key).write_bytes(header + b"\n" + pickle.dumps(Planted(marker)))


def completed_run_pointing_at(client, ref: ResultRef) -> FlowRun:
    """A run stored the way any API client may store one: with a result reference of its
    choosing. Returns it as read back from the store."""
    run = FlowRun(name="planted", flow_name="victim")
    run.state = State(type=StateType.COMPLETED, name="Completed", result_ref=ref)
    client.write_batch(
        RecordBatch(flow_runs=[run], states=[StateRecord(run_id=run.id, state=run.state)])
    )
    return client.read_flow_run(run.id)


def test_a_planted_pickle_behind_a_json_reference_is_refused_and_never_run(
    client, home: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "code-ran"
    plant(home / "storage", "planted", marker)
    run = completed_run_pointing_at(
        client, ResultRef(storage=str(home / "storage"), key="planted", serializer="json")
    )

    with pytest.raises(SerializationError) as refused:
        run.state.result()

    message = str(refused.value)
    assert f"{home / 'storage'}/planted" in message
    assert "'json'" in message and "'cloudpickle'" in message
    assert not marker.exists()


def test_a_pickle_under_a_json_header_is_read_as_json_only(home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    plant(home / "storage", "planted", marker, header_serializer="json")
    ref = ResultRef(storage=str(home / "storage"), key="planted", serializer="json")

    with pytest.raises(SerializationError, match="could not be read with 'json'"):
        load_result(ref)

    assert not marker.exists()


def test_a_file_written_with_another_serializer_than_its_reference_is_refused(
    home: Path,
) -> None:
    store = ResultStore(str(home / "storage"))
    store.write({"rows": 3}, "report", "json", owner="flow run 'report'")
    ref = ResultRef(storage=str(home / "storage"), key="report", serializer="cloudpickle")

    with pytest.raises(SerializationError) as refused:
        load_result(ref)

    assert "says it was written with 'cloudpickle', but the file says 'json'" in str(
        refused.value
    )
    assert load_result(ref.model_copy(update={"serializer": "json"})) == {"rows": 3}


def test_a_reference_outside_the_trusted_storage_is_refused_with_how_to_allow_it(
    client, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    marker = tmp_path / "code-ran"
    plant(elsewhere, "planted", marker)
    run = completed_run_pointing_at(
        client, ResultRef(storage=str(elsewhere), key="planted", serializer="cloudpickle")
    )

    with pytest.raises(UntrustedResultStorage) as refused:
        run.state.result()

    message = str(refused.value)
    assert f"add {elsewhere} to ANABRANCH_RESULTS_TRUSTED_STORAGE" in message
    assert not marker.exists()


@pytest.mark.parametrize("key", ["../elsewhere/planted", "../../elsewhere/planted"])
def test_a_key_climbing_out_of_trusted_storage_is_refused(
    home: Path, tmp_path: Path, key: str
) -> None:
    marker = tmp_path / "code-ran"
    plant(tmp_path / "elsewhere", "planted", marker)
    plant(home / "elsewhere", "planted", marker)
    ref = ResultRef(storage=str(home / "storage"), key=key, serializer="cloudpickle")

    with pytest.raises(UntrustedResultStorage):
        load_result(ref)

    assert not marker.exists()


def test_storage_named_in_the_trusted_setting_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    ResultStore(f"{shared}/").write([1, 2], "k", "json", owner="flow run 'x'")
    ref = ResultRef(storage=str(shared), key="k", serializer="json")
    with pytest.raises(UntrustedResultStorage):
        load_result(ref)

    monkeypatch.setenv("ANABRANCH_RESULTS_TRUSTED_STORAGE", f"/nowhere, file://{shared}/")

    assert load_result(ref) == [1, 2]


def test_a_cache_entry_written_with_another_serializer_is_a_miss(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    plant(tmp_path / "cache", "key", marker)

    found = ResultStore(str(tmp_path / "cache")).read_cached("key", "json")

    assert found == (False, None)
    assert not marker.exists()


def test_another_process_reads_a_flows_own_result_storage_once_it_is_trusted(
    client, tmp_path: Path
) -> None:
    storage = tmp_path / f"custom-{uuid.uuid4().hex[:6]}"

    @flow(result_storage=storage)
    def report() -> list[int]:
        return [1, 2, 3]

    report()
    (run,) = client.read_flow_runs()
    assert run.state.result() == [1, 2, 3]  # this process named the storage: trusted
    reader = (
        "import sys, uuid\n"
        "from anabranch.client import get_client\n"
        "print(repr(get_client().read_flow_run(uuid.UUID(sys.argv[1])).state.result()))\n"
    )

    def read_elsewhere(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", reader, str(run.id)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    untrusted = read_elsewhere()
    trusted = read_elsewhere(ANABRANCH_RESULTS_TRUSTED_STORAGE=str(storage))

    assert untrusted.returncode != 0
    assert "UntrustedResultStorage" in untrusted.stderr
    assert "ANABRANCH_RESULTS_TRUSTED_STORAGE" in untrusted.stderr
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout.strip() == "[1, 2, 3]"
