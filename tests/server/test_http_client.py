"""The HTTP client never hangs: it retries a server that is down or failing within a time
budget, then says which server did not answer and how to start it."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from anabranch.client.http import HTTPClient
from anabranch.exceptions import AnabranchError
from anabranch.schemas import SlotRequest
from server_harness import free_port, start_server


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next (status, body) of the server's script."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook
        script = self.server.script  # type: ignore[attr-defined]
        status, body = script.pop(0) if len(script) > 1 else script[0]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, list[tuple[int, bytes]]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.script = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api", server.script  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def test_a_server_that_is_down_fails_with_a_clear_message_within_the_retry_budget() -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    client = HTTPClient(url, retry_seconds=3)
    started = time.monotonic()

    with pytest.raises(AnabranchError) as caught:
        client.read_flow_runs()

    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert url in message and "did not answer" in message
    assert "`anabranch server start`" in message
    assert 3 <= elapsed <= 3 + 5  # retried for the budget, then gave up
    assert client.statistics()["retries"] >= 4


def test_a_server_that_comes_up_within_the_budget_is_reached(tmp_path: Path) -> None:
    port = free_port()
    client = HTTPClient(f"http://127.0.0.1:{port}/api")
    with ThreadPoolExecutor(1) as pool:
        starting = pool.submit(
            start_server, f"sqlite:///{tmp_path / 'late.db'}", tmp_path, port=port
        )
        assert client.read_flow_runs() == []
        server = starting.result()
    server.stop()
    assert client.statistics()["retries"] >= 1


def test_failing_answers_are_retried_until_one_succeeds(scripted) -> None:
    url, script = scripted
    script += [(503, b'{"detail": "busy"}'), (502, b"bad gateway"), (200, b"[]")]
    client = HTTPClient(url, first_delay=0.01)

    assert client.read_flow_runs() == []
    assert client.statistics() == {"requests": 3, "retries": 2}


def test_a_server_that_keeps_failing_is_reported_with_its_message(scripted) -> None:
    url, script = scripted
    script.append((500, b'{"detail": "Internal server error."}'))
    client = HTTPClient(url, retry_seconds=0.05, first_delay=0.01)

    with pytest.raises(AnabranchError, match="failed on GET /flow_runs with 500 .*[0-9]+ time"):
        client.read_flow_runs()


def test_a_server_that_never_answers_times_out_instead_of_hanging() -> None:
    with socket.socket() as listener:  # accepts connections (the kernel does), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/api"
        client = HTTPClient(
            url, timeout=httpx.Timeout(0.3), retry_seconds=0.5, first_delay=0.01
        )
        started = time.monotonic()

        with pytest.raises(AnabranchError, match="did not answer GET /flow_runs .*ReadTimeout"):
            client.read_flow_runs()
        assert client.statistics()["requests"] >= 2
        sent = client.statistics()["requests"]
        # A rate-limit request whose answer was lost may have counted: it is not resent.
        with pytest.raises(AnabranchError, match="did not answer POST /concurrency/acquire"):
            client.acquire_concurrency_slots(
                [SlotRequest(names=["x"], holder="me", mode="rate")]
            )
        assert client.statistics()["requests"] == sent + 1
        assert time.monotonic() - started < 10
