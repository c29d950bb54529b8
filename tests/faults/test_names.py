"""Names of limits, pools, queues and deployments: a name that could be created but never
read or deleted (``..``, 100,000 characters, a NUL) is refused when it is created, the same
way embedded and through the server; any other name works end to end, CLI included."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from anabranch.cli import main
from anabranch.client import get_client
from anabranch.client.embedded import EmbeddedClient
from anabranch.exceptions import AnabranchError, ObjectNotFound
from anabranch.schemas.deployments import Deployment
from server_harness import Server, start_server

pytestmark = pytest.mark.embedded_only

POOL = "names-pool"
BAD = {
    "dot": (".", "'.' and '..'"),
    "dot-dot": ("..", "'.' and '..'"),
    "100k characters": ("x" * 100_000, "100,000 characters, and a name has at most 200"),
    "201 characters": ("x" * 201, "at most 200"),
    "NUL": ("nul\x00byte", "control character '\\x00'"),
    "newline": ("two\nlines", "control character '\\n'"),
    "blank": ("   ", "at least one character that is not whitespace"),
}
GOOD = ["nightly etl", "db:primary", "données-é ✓", "名前", "50%?#&=+", "a%2Fb", "x" * 200]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("names")
    started = start_server(f"sqlite:///{folder / 'anabranch.db'}", folder)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedClient:
    return EmbeddedClient(f"sqlite:///{tmp_path_factory.mktemp('embedded') / 'anabranch.db'}")


@pytest.fixture(params=["embedded", "server"])
def store(request: pytest.FixtureRequest, embedded: EmbeddedClient, server: Server):
    client = embedded if request.param == "embedded" else server.client()
    client.create_work_pool(POOL)
    return client


def deployment(name: str, flow_name: str = "etl") -> Deployment:
    return Deployment(name=name, flow_name=flow_name, entrypoint="flows.py:etl")


CREATE: dict[str, Callable[..., object]] = {
    "concurrency limit": lambda client, name: client.create_concurrency_limit(name, 1),
    "work pool": lambda client, name: client.create_work_pool(name),
    "work queue": lambda client, name: client.create_work_queue(name, work_pool_name=POOL),
    "deployment": lambda client, name: client.save_deployment(deployment(name)),
    "flow": lambda client, name: client.save_deployment(deployment("dev", flow_name=name)),
}


@pytest.mark.parametrize("what", list(CREATE))
@pytest.mark.parametrize("bad", list(BAD))
def test_a_name_that_could_not_be_addressed_is_refused_on_create(store, what: str, bad: str):
    name, rule = BAD[bad]

    with pytest.raises(AnabranchError) as refused:
        CREATE[what](store, name)

    message = str(refused.value)
    assert f"can not be a {what} name" in message
    assert rule in message
    assert len(message) < 1000  # a long name is shown cut short


@pytest.mark.parametrize("what", ["work pool", "work queue", "deployment", "flow"])
def test_a_slash_is_refused_in_names_that_are_one_url_path_segment(store, what: str) -> None:
    with pytest.raises(AnabranchError, match="can not hold '/'"):
        CREATE[what](store, "etl/daily")


def test_a_concurrency_limit_name_may_hold_a_slash(store) -> None:
    store.create_concurrency_limit("team/db", 2)

    assert store.read_concurrency_limit("team/db").limit == 2
    store.delete_concurrency_limit("team/db")


@pytest.mark.parametrize("name", GOOD, ids=lambda name: name[:20])
def test_an_ordinary_name_is_created_read_and_deleted_through_the_client(store, name: str):
    store.create_concurrency_limit(name, 3)
    store.create_work_pool(name)
    store.create_work_queue(name, work_pool_name=POOL)
    saved = store.save_deployment(deployment(name, flow_name=name))

    assert store.read_concurrency_limit(name).name == name
    assert store.read_work_pool(name).name == name
    assert store.read_work_queue(name, work_pool_name=POOL).name == name
    assert store.read_deployment_by_name(f"{name}/{name}").id == saved.id

    store.delete_concurrency_limit(name)
    store.delete_work_pool(name)
    store.delete_work_queue(name, work_pool_name=POOL)
    store.delete_deployment(saved.id)
    for read in (
        lambda: store.read_concurrency_limit(name),
        lambda: store.read_work_pool(name),
        lambda: store.read_work_queue(name, work_pool_name=POOL),
        lambda: store.read_deployment_by_name(f"{name}/{name}"),
    ):
        with pytest.raises(ObjectNotFound):
            read()


@pytest.fixture(params=["embedded", "server"])
def cli(
    request: pytest.FixtureRequest,
    server: Server,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    home: Path,
) -> Callable[..., str]:
    """`anabranch ARGS...` in this process, on this test's home or on the server; returns
    its output and fails the test if it fails."""
    if request.param == "server":
        monkeypatch.setenv("ANABRANCH_API_URL", server.url)

    def run(*args: str) -> str:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["anabranch", *args])
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, capsys.readouterr()
        return capsys.readouterr().out

    return run


@pytest.mark.parametrize("name", ["nightly etl", "db:primary", "données-é ✓"])
def test_an_ordinary_name_is_created_inspected_and_deleted_through_the_cli(cli, name: str):
    cli("concurrency-limit", "create", name, "2")
    cli("work-pool", "create", POOL)
    cli("work-pool", "create", name)
    cli("work-queue", "create", name, "--pool", POOL)
    get_client().save_deployment(deployment(name))

    assert name in cli("concurrency-limit", "inspect", name)
    assert name in cli("work-pool", "inspect", name)
    assert name in cli("work-queue", "inspect", name, "--pool", POOL)
    assert name in cli("deployment", "inspect", f"etl/{name}")

    cli("concurrency-limit", "delete", name)
    cli("work-pool", "delete", name)
    cli("work-queue", "delete", name, "--pool", POOL)
    cli("deployment", "delete", f"etl/{name}")
    for noun in ("concurrency-limit", "work-pool", "deployment"):
        listed = json.loads(cli(noun, "ls", "--output", "json"))
        assert name not in {item["name"] for item in listed}
