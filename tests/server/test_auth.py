"""With an API key, every request but the health check must carry it as a bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from anabranch import flow
from anabranch.client import get_client
from anabranch.client.http import HTTPClient
from anabranch.client.recorder import flush_all
from anabranch.exceptions import AnabranchError
from server_harness import Server, start_server

KEY = "s3cret-key-\N{SNOWMAN}"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("guarded")
    server = start_server(f"sqlite:///{folder / 'anabranch.db'}", folder, api_key=KEY)
    yield server
    server.stop()


def test_health_needs_no_key(guarded: Server) -> None:
    answer = httpx.get(f"{guarded.url}/health")

    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"
    assert answer.json()["version"] == version("anabranch")


def test_a_request_without_a_key_is_refused_with_the_header_to_send(guarded: Server) -> None:
    answer = httpx.get(f"{guarded.url}/flow_runs")

    assert answer.status_code == 401
    assert "Authorization: Bearer" in answer.json()["detail"]
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization", ["Bearer wrong", "Bearer " + KEY[:-1], "Basic czNjcmV0", "Bearer"]
)
def test_a_wrong_key_is_refused(guarded: Server, authorization: str) -> None:
    answer = httpx.post(
        f"{guarded.url}/concurrency_limits",
        json={"name": "x", "limit": 1},
        headers={"Authorization": authorization.encode()},
    )

    assert answer.status_code == 401
    assert "ANABRANCH_API_KEY" in answer.json()["detail"]


def test_the_right_key_is_let_through(guarded: Server) -> None:
    answer = httpx.get(
        f"{guarded.url}/flow_runs", headers={"Authorization": f"Bearer {KEY}".encode()}
    )

    assert answer.status_code == 200


def test_a_client_without_the_key_says_to_set_it(guarded: Server) -> None:
    unkeyed = HTTPClient(guarded.url, api_key="")

    with pytest.raises(AnabranchError, match="Set ANABRANCH_API_KEY"):
        unkeyed.read_flow_runs()
    unkeyed.close()


def test_flows_run_through_a_guarded_server_with_the_key_from_the_environment(
    guarded: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ANABRANCH_API_URL", guarded.url)
    monkeypatch.setenv("ANABRANCH_API_KEY", KEY)

    @flow(name="guarded-flow")
    def guarded_flow() -> int:
        return 7

    assert guarded_flow() == 7
    flush_all()

    (run,) = get_client().read_flow_runs(flow_name="guarded-flow")
    assert run.state is not None and run.state.is_completed()
