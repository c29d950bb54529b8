"""Bad input gets one sentence naming the thing and the fix, loses nothing, and shows no
traceback (issue 9): deployment parameters JSON can not carry, integers larger than the
databases store, a store that can not be written, a database file that is damaged, and
names refused the same way (the same error class) embedded and through a server.

Timings are generous bounds on a hang (the old behaviour waited out 10 s of retries for
errors that can not heal), never measures of speed.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anabranch import flow
from anabranch.client import get_client
from anabranch.client.recorder import flush_all
from anabranch.deployments import run_deployment
from anabranch.deployments.deploy import deploy
from anabranch.deployments.entrypoints import load_flow
from anabranch.exceptions import (
    AnabranchError,
    InvalidConcurrencyLimit,
    InvalidDeployment,
    InvalidName,
    InvalidParameters,
    StoreUnusable,
)
from anabranch.results.storage import ResultStore
from anabranch.schemas.deployments import Deployment
from anabranch.workers.worker import ProcessWorker
from cli_runner import ANABRANCH, ok, one_line_error
from flow_files import isolated_imports
from server_harness import Server, clean_env, start_server

pytestmark = pytest.mark.embedded_only

HUGE = "99999999999999999999999"
LARGEST = 2_147_483_647
# An error that can not heal is reported at once; before, it came after 10 s of retries.
AT_ONCE_SECONDS = 5.0



def save_deployment(client: Any, parameter_schema: dict[str, Any] | None = None) -> str:
    client.create_work_pool("pool")
    client.save_deployment(
        Deployment(
            name="nightly", flow_name="child", entrypoint="flows.py:child",
            work_pool_name="pool", parameter_schema=parameter_schema,
        )
    )
    return "child/nightly"


# 1. Deployment parameters and settings JSON can not carry


@pytest.mark.parametrize(
    ("parameters", "parameter", "what", "fix"),
    [
        ({"conn": object()}, "conn", "is of type object", "e.g. a path or an id instead"),
        ({"callback": lambda row: row}, "callback", "is of type function", "JSON-compatible"),
        ({"blob": b"\xff\xfe"}, "blob", "is bytes that are not UTF-8 text", "JSON-compatible"),
        ({"threshold": float("nan")}, "threshold", "is nan", "pass a finite number"),
        ({"ceiling": float("-inf")}, "ceiling", "is -inf", "pass a finite number"),
        (
            {"config": {"paths": ["a.csv", object()]}},
            "config.paths.1", "is of type object", "JSON-compatible",
        ),
    ],
    ids=["object", "lambda", "bytes", "nan", "infinity", "nested"],
)
def test_a_parameter_json_can_not_carry_is_refused_by_name_before_a_run_is_created(
    client, parameters: dict[str, Any], parameter: str, what: str, fix: str
) -> None:
    name = save_deployment(client)

    with pytest.raises(InvalidParameters) as refused:
        run_deployment(name, parameters=parameters, timeout=0)

    message = str(refused.value)
    assert message.startswith(f"Parameter {parameter!r} of deployment 'child/nightly' {what}")
    assert fix in message
    assert client.read_flow_runs() == []


def test_json_compatible_parameters_reach_the_run_as_json(client) -> None:
    name = save_deployment(client)

    run = run_deployment(
        name, parameters={"day": "2025-03-01", "regions": ("emea",), "limit": 3}, timeout=0
    )

    assert client.read_flow_run(run.id).parameters == {
        "day": "2025-03-01", "regions": ["emea"], "limit": 3,
    }


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A real server on SQLite; this test's client talks to it."""
    started = start_server(f"sqlite:///{tmp_path / 'server' / 'anabranch.db'}", tmp_path / "server")
    monkeypatch.setenv("ANABRANCH_API_URL", started.url)
    try:
        yield started
    finally:
        flush_all()
        started.stop()


def test_nan_through_a_server_is_refused_by_name_instead_of_arriving_as_none(
    server: Server,
) -> None:
    client = get_client()
    name = save_deployment(client)

    with pytest.raises(InvalidParameters, match="Parameter 'threshold' of deployment"):
        run_deployment(name, parameters={"threshold": float("nan")}, timeout=0)
    # A client that sends NaN anyway (a JSON extension Python's json writes) is refused.
    deployment = client.read_deployment_by_name(name)
    answer = httpx.post(
        f"{server.url}/deployments/{deployment.id}/create_flow_run",
        content='{"parameters": {"threshold": NaN}}',
        headers={"content-type": "application/json"},
        timeout=30,
    )

    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "parameters"]
    assert "parameter 'threshold' is nan" in error["msg"]
    assert error["input"] == {"threshold": "nan"}  # quoted as text: JSON has no NaN
    assert client.read_flow_runs() == []


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_a_number_json_can_not_carry_is_a_422_naming_the_field_not_a_400(
    server: Server, number: str
) -> None:
    answer = httpx.post(
        f"{server.url}/concurrency_limits",
        content=f'{{"name": "x", "limit": 1, "slot_decay_per_second": {number}}}',
        headers={"content-type": "application/json"},
        timeout=30,
    )

    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "slot_decay_per_second"]
    assert error["msg"] == "Input should be a finite number"
    assert error["input"] == repr(float(number))
    assert get_client().read_concurrency_limits() == []


def test_cli_params_that_are_not_strict_json_stay_the_text_typed(cli, client) -> None:
    name = save_deployment(client)

    ok(cli("deployment", "run", name, "--param", "threshold=NaN", "--param", "big=1e400",
           "--param", "n=3"))

    (run,) = client.read_flow_runs()
    assert run.parameters == {"threshold": "NaN", "big": "1e400", "n": 3}


def test_a_cli_param_the_flow_can_not_take_is_one_line_naming_it(cli, client) -> None:
    schema = {"type": "object", "properties": {"threshold": {"type": "number"}}}
    name = save_deployment(client, parameter_schema=schema)

    line = one_line_error(cli("deployment", "run", name, "--param", "threshold=NaN"))

    assert "Deployment 'child/nightly' refused the run's parameters" in line
    assert "parameter 'threshold': 'NaN' is not of type 'number'" in line
    assert client.read_flow_runs() == []


CHILD = """
    from typing import Any

    from anabranch import flow

    @flow
    def child(threshold: float = 0.5, options: Any = None, ceiling: float = float("inf")):
        return threshold
"""
NOT_FINITE_FIX = (
    "which JSON can not carry (it would be stored as None); pass a finite number, or None or "
    "a string if it stands for a missing or unbounded value."
)


@pytest.fixture
def child_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A flow file in the current directory; its entrypoint."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "flows.py").write_text(textwrap.dedent(CHILD))
    with isolated_imports(folder, monkeypatch):
        yield "flows.py:child"


@pytest.mark.parametrize(
    ("parameters", "parameter", "number"),
    [
        ({"threshold": float("nan")}, "threshold", "nan"),
        ({"threshold": "-inf"}, "threshold", "-inf"),  # text a float parameter takes
        ({"options": {"bounds": [0, float("inf")]}}, "options.bounds.1", "inf"),
    ],
    ids=["nan", "text made infinity", "infinity inside Any"],
)
def test_a_default_parameter_json_can_not_carry_is_refused_at_deploy_naming_the_flow(
    client, child_file: str, parameters: dict[str, Any], parameter: str, number: str
) -> None:
    child = load_flow(child_file)

    with pytest.raises(InvalidParameters) as refused:
        deploy(child, name="nightly", parameters=parameters)

    assert str(refused.value) == (
        f"Parameter {parameter!r} of flow 'child' is {number}, {NOT_FINITE_FIX}"
    )
    assert client.read_deployments() == []


def test_a_default_param_json_can_not_carry_is_one_line_in_the_cli(
    cli, client, child_file: str
) -> None:
    line = one_line_error(
        cli("deploy", child_file, "--name", "nightly", "--param", "threshold=NaN")
    )

    assert line == f"Error: Parameter 'threshold' of flow 'child' is nan, {NOT_FINITE_FIX}"
    assert client.read_deployments() == []


def test_an_infinite_default_in_the_flows_signature_is_left_out_of_the_stored_schema(
    server: Server, child_file: str
) -> None:
    # JSON has no infinity: the server stored it as null, and PostgreSQL refuses it. A run
    # that leaves the parameter out gets the function's own default anyway.
    deployment = deploy(load_flow(child_file), name="nightly")

    schema = get_client().read_deployment(deployment.id).parameter_schema
    assert schema is not None
    assert schema["properties"]["ceiling"] == {"title": "ceiling", "type": "number"}
    assert schema["properties"]["threshold"]["default"] == 0.5
    assert schema["required"] == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"interval": float("inf")},
            "An interval is a finite number of seconds, not inf; for a deployment that runs "
            "only when asked, give no schedule.",
        ),
        (
            {"max_lateness_seconds": float("nan")},
            "max_lateness_seconds is a finite number of seconds, not nan; for runs that are "
            "never too late, use late_run_policy='run'.",
        ),
    ],
    ids=["interval", "max lateness"],
)
def test_a_schedule_setting_that_is_not_finite_is_refused_at_deploy(
    client, child_file: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidDeployment) as refused:
        deploy(load_flow(child_file), name="nightly", **options)

    assert str(refused.value) == message
    assert client.read_deployments() == []


# 2. Integers larger than the databases store


def test_a_huge_concurrency_limit_is_one_line_from_the_real_script(home: Path) -> None:
    result = subprocess.run(
        [ANABRANCH, "concurrency-limit", "create", "x", HUGE],
        capture_output=True, text=True, timeout=60,
    )

    assert one_line_error(result) == (
        f"Error: LIMIT must be at most 2,147,483,647 slots; got '{HUGE}'."
    )


@pytest.mark.parametrize(
    "args",
    [
        ("concurrency-limit", "create", "x", HUGE),
        ("concurrency-limit", "create", "x", str(LARGEST + 1)),
        ("concurrency-limit", "update", "x", "--limit", HUGE),
        ("work-pool", "create", "pool", "--concurrency-limit", HUGE),
        ("work-pool", "set-concurrency-limit", "pool", HUGE),
        ("work-queue", "create", "q", "--pool", "pool", "--priority", HUGE),
        ("work-queue", "create", "q", "--pool", "pool", "--concurrency-limit", HUGE),
        ("work-queue", "set-concurrency-limit", "default", HUGE, "--pool", "pool"),
        ("deploy", "flows.py:child", "--name", "n", "--pool", "pool", "--concurrency-limit", HUGE),
        ("worker", "start", "--pool", "pool", "--limit", HUGE),
        ("flow-run", "ls", "--limit", HUGE),
    ],
    ids=lambda args: " ".join(args).replace(HUGE, "HUGE"),
)
def test_every_integer_option_refuses_more_than_the_databases_store_in_one_line(
    cli, client, args: tuple[str, ...]
) -> None:
    client.create_work_pool("pool")

    line = one_line_error(cli(*args))

    assert "must be at most 2,147,483,647" in line
    assert client.read_concurrency_limits() == []
    assert [(pool.name, pool.concurrency_limit) for pool in client.read_work_pools()] == [
        ("pool", None)
    ]
    assert [queue.name for queue in client.read_work_queues(work_pool_name="pool")] == [
        "default"
    ]


def test_the_largest_limit_the_databases_store_is_accepted(cli, client) -> None:
    ok(cli("concurrency-limit", "create", "x", str(LARGEST)))

    assert client.read_concurrency_limit("x").limit == LARGEST


def test_a_limit_over_what_postgresql_stores_is_refused_through_the_api(server: Server) -> None:
    client = get_client()

    with pytest.raises(InvalidConcurrencyLimit, match="2,?147,?483,?647"):
        client.create_concurrency_limit("x", LARGEST + 1)

    assert client.read_concurrency_limits() == []


def test_a_deployment_limit_over_what_the_databases_store_is_refused_at_deploy(
    client, child_file: str
) -> None:
    child = load_flow(child_file)

    with pytest.raises(InvalidDeployment) as refused:
        deploy(child, name="nightly", concurrency_limit=LARGEST + 1)

    assert str(refused.value) == (
        "A deployment's concurrency_limit must be at most 2,147,483,647 (the largest whole "
        "number the databases store), not 2,147,483,648; leave it None for no limit."
    )
    assert client.read_deployments() == []
    assert deploy(child, name="nightly", concurrency_limit=LARGEST).concurrency_limit == LARGEST


@pytest.mark.parametrize("limit", [0, LARGEST + 1])
def test_a_worker_limit_outside_what_the_databases_store_is_refused_by_name(limit: int) -> None:
    with pytest.raises(ValueError) as refused:
        ProcessWorker("pool", limit=limit)

    assert str(refused.value) == (
        f"A worker's limit is 1 or more and at most 2,147,483,647 runs at once, not {limit:,}; "
        "leave it None for no limit."
    )


# 3. A store that can not be written, and 4. a damaged database file

FLOW = textwrap.dedent(
    """
    import time
    from anabranch import flow
    from anabranch.client.recorder import flush_all

    ran = []

    @flow(persist_result=False)
    def nightly():
        ran.append(True)
        return 1

    started = time.monotonic()
    try:
        nightly()
    except Exception as exc:
        print(f"RAISED {type(exc).__name__}: {exc}")
    flush_all()
    print(f"RAN {bool(ran)} IN {time.monotonic() - started:.2f}")
    """
)


def _without_dac_override() -> list[str] | None:
    """How to run a command to which file modes apply (root ignores them), or None."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    command = [setpriv or "setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if setpriv and subprocess.run([*command, "true"], capture_output=True).returncode == 0:
        return command
    return None


def _store_under_a_file(tmp_path: Path) -> tuple[Path, str]:
    (tmp_path / "afile").write_text("not a folder")
    home = tmp_path / "afile" / "home"
    return home, (
        f"The anabranch folder {home} can not be created or written (a file is in the way "
        f"of a folder: {tmp_path / 'afile'})"
    )


def _database_that_is_a_folder(tmp_path: Path) -> tuple[Path, str]:
    home = tmp_path / "home-with-folder"
    (home / "anabranch.db").mkdir(parents=True)
    return home, f"The anabranch database {home / 'anabranch.db'} can not be created or written"


def _read_only_home(tmp_path: Path) -> tuple[Path, str]:
    home = tmp_path / "read-only-home"
    home.mkdir()
    home.chmod(0o555)
    return home, (
        f"The anabranch database {home / 'anabranch.db'} can not be created or written "
        "(Permission denied)"
    )


UNWRITABLE = {
    "home under a file": _store_under_a_file,
    "database path is a folder": _database_that_is_a_folder,
    "read-only home": _read_only_home,
}
FIX = "make it writable, or point ANABRANCH_HOME (or ANABRANCH_DATABASE_URL) to a place you can"


@pytest.fixture(params=list(UNWRITABLE))
def unwritable(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str, list[str]]:
    """(home, the sentence's start, the prefix that runs a command under file modes)."""
    prefix = _without_dac_override() if request.param == "read-only home" else []
    if prefix is None:
        pytest.skip("running as root, and setpriv can not drop the override of file modes")
    home, sentence = UNWRITABLE[request.param](tmp_path)
    return home, sentence, prefix


def _run(prefix: list[str], home: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *command], env=clean_env(ANABRANCH_HOME=str(home)), capture_output=True,
        text=True, timeout=120,
    )


def test_an_unwritable_store_is_one_line_in_the_cli_naming_the_path_and_the_fix(
    unwritable: tuple[Path, str, list[str]],
) -> None:
    home, sentence, prefix = unwritable

    line = one_line_error(_run(prefix, home, ANABRANCH, "flow-run", "ls"))

    assert line.startswith(f"Error: {sentence}")
    assert FIX in line


def test_a_flow_on_an_unwritable_store_fails_at_once_before_running_with_one_sentence(
    unwritable: tuple[Path, str, list[str]], tmp_path: Path
) -> None:
    home, sentence, prefix = unwritable
    script = tmp_path / "nightly.py"
    script.write_text(FLOW)

    result = _run(prefix, home, sys.executable, str(script))

    assert "Traceback" not in result.stderr, result.stderr
    raised = [line for line in result.stdout.splitlines() if line.startswith("RAISED")]
    assert raised == [f"RAISED StoreUnusable: {raised[0].split(': ', 1)[1]}"], result.stdout
    assert sentence in raised[0] and FIX in raised[0]
    assert "RAN False" in result.stdout
    seconds = float(result.stdout.split(" IN ")[-1])
    assert seconds < AT_ONCE_SECONDS, result.stdout


def test_a_flow_that_can_not_record_fails_before_running_anything(tmp_path: Path) -> None:
    home, sentence = _store_under_a_file(tmp_path)
    script = tmp_path / "nightly.py"
    script.write_text(FLOW)

    result = _run([], home, sys.executable, str(script))

    assert f"RAISED StoreUnusable: {sentence}" in result.stdout
    assert "RAN False" in result.stdout


def _random_bytes(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(9).randbytes(4096))
    return path.read_bytes()


def _damaged_pages(path: Path) -> bytes:
    """A real anabranch database whose first page, past the 100-byte header, is noise."""
    result = _run([], path.parent, sys.executable, "-c",
                  "from anabranch.client import get_client; get_client()")
    assert result.returncode == 0, result.stderr
    data = bytearray(path.read_bytes())
    data[100:4096] = random.Random(9).randbytes(3996)
    path.write_bytes(bytes(data))
    return bytes(data)


@pytest.fixture(params=["random bytes", "damaged pages"])
def damaged(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, bytes]:
    """A home whose anabranch.db is damaged, and the file's bytes."""
    database = tmp_path / "damaged-home" / "anabranch.db"
    make = _random_bytes if request.param == "random bytes" else _damaged_pages
    return database, make(database)


def _damaged_sentence(database: Path) -> str:
    return f"The anabranch database {database} is damaged or not a SQLite database ("


def _moved_aside(database: Path) -> str:
    return (
        f"move it aside (mv {database} {database}.corrupt) and a new, empty one is created "
        "on next use."
    )


def test_a_damaged_database_is_one_line_in_the_cli_and_is_left_as_it_was(
    damaged: tuple[Path, bytes],
) -> None:
    database, contents = damaged

    line = one_line_error(_run([], database.parent, ANABRANCH, "flow-run", "ls"))

    assert line.startswith(f"Error: {_damaged_sentence(database)}")
    assert line.endswith(_moved_aside(database))
    assert database.read_bytes() == contents
    # The fix the sentence gives works.
    database.rename(f"{database}.corrupt")
    assert ok(_run([], database.parent, ANABRANCH, "flow-run", "ls")) == ""


def test_a_flow_on_a_damaged_database_hears_of_it_at_once(
    damaged: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    database, contents = damaged
    monkeypatch.setenv("ANABRANCH_HOME", str(database.parent))

    @flow(persist_result=False)
    def nightly() -> int:
        return 1

    started = time.monotonic()
    with pytest.raises(StoreUnusable, match="is damaged or not a SQLite database"):
        get_client()
    with pytest.raises(StoreUnusable) as raised:
        nightly()
    flush_all()
    elapsed = time.monotonic() - started

    assert elapsed < AT_ONCE_SECONDS
    told = str(raised.value)
    assert _damaged_sentence(database) in told and _moved_aside(database) in told
    assert "Traceback" not in capsys.readouterr().err
    assert database.read_bytes() == contents


def test_result_storage_that_can_not_be_written_is_one_sentence_naming_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "afile").write_text("not a folder")
    store = ResultStore(str(tmp_path / "afile" / "storage"))

    with pytest.raises(StoreUnusable) as refused:
        store.write({"rows": 3}, key="k", serializer="json", owner="flow run 'nightly'")

    assert str(refused.value) == (
        f"The result of flow run 'nightly' can not be written to {tmp_path}/afile/storage "
        f"(a file is in the way of a folder: {tmp_path}/afile); make that folder writable, "
        "or point ANABRANCH_RESULTS_STORAGE (or ANABRANCH_HOME) to a place you can write."
    )


# 5. Names: one error class whatever the transport

BAD_NAMES: dict[str, tuple[type[Exception], Any]] = {
    "work pool": (InvalidName, lambda client: client.create_work_pool("..")),
    "empty work pool": (InvalidName, lambda client: client.create_work_pool("")),
    "work queue": (
        InvalidName, lambda client: client.create_work_queue("..", work_pool_name="pool"),
    ),
    "deployment": (
        InvalidDeployment,
        lambda client: client.save_deployment(
            Deployment(name="..", flow_name="child", entrypoint="flows.py:child")
        ),
    ),
}


@pytest.fixture(params=["embedded", "server"])
def any_store(request: pytest.FixtureRequest, client) -> Any:
    """A client of the embedded store, or of a real server; it has a work pool "pool"."""
    if request.param == "server":
        request.getfixturevalue("server")
        client = get_client()
    client.create_work_pool("pool")
    return client


@pytest.mark.parametrize("what", list(BAD_NAMES))
def test_a_bad_name_raises_the_same_error_class_embedded_and_through_a_server(
    any_store: Any, what: str
) -> None:
    error, create = BAD_NAMES[what]

    with pytest.raises(error) as refused:
        create(any_store)

    assert "name" in str(refused.value)
    assert [pool.name for pool in any_store.read_work_pools()] == ["pool"]
    assert [q.name for q in any_store.read_work_queues(work_pool_name="pool")] == ["default"]
    assert any_store.read_deployments() == []


@pytest.mark.parametrize(
    "create",
    [
        lambda client: client.create_work_pool("other", type="docker"),
        lambda client: client.create_work_pool("other", concurrency_limit=-1),
        lambda client: client.create_work_queue("q", work_pool_name="pool", priority=0),
    ],
    ids=["pool type", "pool limit", "queue priority"],
)
def test_a_pool_refused_for_something_else_than_its_name_is_not_an_invalid_name(
    any_store: Any, create: Any
) -> None:
    with pytest.raises((ValueError, AnabranchError)) as refused:
        create(any_store)

    assert not isinstance(refused.value, InvalidName)
