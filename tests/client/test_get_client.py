"""get_client(): one shared client per store per process, embedded or HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from anabranch.client import get_client
from anabranch.client.http import HTTPClient


def test_get_client_shares_one_client_per_store_across_threads() -> None:
    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(lambda _: get_client(), range(16)))

    assert len({id(client) for client in clients}) == 1


def test_each_store_gets_its_own_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    first = get_client()
    monkeypatch.setenv("ANABRANCH_HOME", str(tmp_path / "elsewhere"))

    assert get_client() is not first
    assert (tmp_path / "elsewhere" / "anabranch.db").is_file()


def test_a_client_used_in_a_with_block_stays_usable_afterwards() -> None:
    with get_client() as client:
        client.read_flow_runs()

    assert get_client().read_flow_runs() == []


def test_an_api_url_selects_the_http_client_shared_per_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANABRANCH_API_URL", "http://127.0.0.1:4200/api")

    client = get_client()

    assert isinstance(client, HTTPClient)
    assert client.api_url == "http://127.0.0.1:4200/api"
    assert get_client() is client
