"""Clients that send too much, too slowly, or without the key cost a real server little.

The requests are written by hand on raw sockets, so each test controls exactly which bytes
were sent when the answer came: an answer read before the body was sent proves the server
decided without reading it.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from anabranch.exceptions import AnabranchError
from anabranch.schemas import LogRecord, RecordBatch
from server_harness import Server, start_server

pytestmark = pytest.mark.embedded_only

LIMIT = 1024 * 1024
BODY_TIMEOUT = 2.0
KEY = "hostile-test-key"
# Generous bounds for a loaded machine: the point is "bounded", not "fast".
ANSWER_SECONDS = 15.0
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("limits")
    started = start_server(
        f"sqlite:///{folder / 'anabranch.db'}",
        folder,
        ANABRANCH_SERVER_MAX_BODY_BYTES=str(LIMIT),
        ANABRANCH_SERVER_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
    )
    yield started
    started.stop()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("guarded-limits")
    started = start_server(
        f"sqlite:///{folder / 'anabranch.db'}",
        folder,
        api_key=KEY,
        ANABRANCH_SERVER_MAX_BODY_BYTES=str(LIMIT),
    )
    yield started
    started.stop()


class Answer:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = {name.lower(): value for name, value in response.getheaders()}
        self.detail = json.loads(response.read())["detail"]


def connect(server: Server) -> socket.socket:
    address = urlsplit(server.url)
    assert address.hostname is not None and address.port is not None
    return socket.create_connection((address.hostname, address.port), timeout=ANSWER_SECONDS)


def send_head(sock: socket.socket, path: str, **headers: str) -> None:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())


def read_answer(sock: socket.socket) -> Answer:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return Answer(response)


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed the connection (EOF or reset), within the timeout."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def rss_kib(server: Server) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc status")


class Sender(threading.Thread):
    """Sends a chunked body of ``total`` bytes until done or the server closes on it."""

    def __init__(self, sock: socket.socket, total: int) -> None:
        super().__init__(daemon=True)
        self.sock, self.total = sock, total
        self.sent = 0
        self.error: OSError | None = None

    def run(self) -> None:
        chunk = b"%x\r\n" % CHUNK + b"x" * CHUNK + b"\r\n"
        try:
            while self.sent < self.total:
                self.sock.sendall(chunk)
                self.sent += CHUNK
            self.sock.sendall(b"0\r\n\r\n")
        except OSError as exc:
            self.error = exc


def test_a_body_declared_over_the_limit_is_refused_before_any_of_it_is_sent(
    server: Server,
) -> None:
    with connect(server) as sock:
        send_head(sock, "/api/batches", Content_Length=str(10 * 2**30))

        answer = read_answer(sock)

        assert answer.status == 413
        assert "10,737,418,240 bytes" in answer.detail
        assert f"{LIMIT:,} bytes" in answer.detail
        assert "ANABRANCH_SERVER_MAX_BODY_BYTES" in answer.detail
        assert answer.headers["connection"] == "close"
        assert closed_by_server(sock)


def test_a_chunked_body_is_refused_once_it_passes_the_limit_and_server_memory_stays_flat(
    server: Server,
) -> None:
    before = rss_kib(server)
    with connect(server) as sock:
        send_head(sock, "/api/batches", Transfer_Encoding="chunked")
        sender = Sender(sock, 200 * 2**20)
        sender.start()

        answer = read_answer(sock)
        sender.join(ANSWER_SECONDS)

        assert answer.status == 413
        assert "ANABRANCH_SERVER_MAX_BODY_BYTES" in answer.detail
        assert not sender.is_alive(), "the server kept reading a body it refused"
        assert sender.error is not None and sender.sent < 200 * 2**20
    assert rss_kib(server) - before < 100 * 1024


def test_a_chunked_body_within_the_limit_is_served(server: Server) -> None:
    body = RecordBatch(
        logs=[LogRecord(name="etl", level=20, message="m" * 1000) for _ in range(100)]
    ).model_dump_json().encode()
    with connect(server) as sock:
        send_head(sock, "/api/batches", Transfer_Encoding="chunked")
        for start in range(0, len(body), CHUNK):
            part = body[start : start + CHUNK]
            sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
        sock.sendall(b"0\r\n\r\n")

        response = http.client.HTTPResponse(sock)
        response.begin()

        assert response.status == 204


def test_the_http_client_reports_an_oversized_batch_with_the_limit_and_the_setting(
    server: Server,
) -> None:
    client = server.client(retry_seconds=1)
    huge = RecordBatch(logs=[LogRecord(name="etl", level=20, message="y" * 20 * 2**20)])

    with pytest.raises(AnabranchError, match="413") as refused:
        client.write_batch(huge)

    assert "ANABRANCH_SERVER_MAX_BODY_BYTES" in str(refused.value)


def test_a_body_arriving_too_slowly_is_answered_408_and_the_connection_closed(
    server: Server,
) -> None:
    stop = threading.Event()
    with connect(server) as sock:
        send_head(sock, "/api/batches", Content_Length=str(2**20))

        def trickle() -> None:
            try:
                while not stop.wait(0.2):
                    sock.sendall(b"[[[[")
            except OSError:
                pass

        trickler = threading.Thread(target=trickle, daemon=True)
        started = time.monotonic()
        trickler.start()
        try:
            answer = read_answer(sock)
            closed = closed_by_server(sock)
        finally:
            stop.set()
            trickler.join(ANSWER_SECONDS)
        elapsed = time.monotonic() - started

    assert answer.status == 408
    assert "ANABRANCH_SERVER_BODY_TIMEOUT_SECONDS" in answer.detail
    assert closed
    assert BODY_TIMEOUT * 0.9 <= elapsed < ANSWER_SECONDS


def test_an_answer_given_without_reading_the_body_closes_the_connection(server: Server) -> None:
    with connect(server) as sock:
        send_head(sock, "/api/no-such-route", Content_Length=str(LIMIT))

        response = http.client.HTTPResponse(sock)
        response.begin()

        assert response.status == 404
        assert response.getheader("connection") == "close"
        assert closed_by_server(sock)


def test_ordinary_requests_keep_their_connection(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        first = client.post("/concurrency_limits", json={"name": "kept", "limit": 1})
        second = client.get("/concurrency_limits/kept")

    assert first.status_code == 200 and second.status_code == 200
    assert "connection" not in first.headers


def test_without_the_key_a_large_post_is_refused_401_before_its_body_is_sent(
    guarded: Server,
) -> None:
    before = rss_kib(guarded)
    with connect(guarded) as sock:
        send_head(sock, "/api/batches", Content_Length=str(200 * 2**20))

        answer = read_answer(sock)

        assert answer.status == 401
        assert "Authorization: Bearer" in answer.detail
        assert answer.headers["www-authenticate"] == "Bearer"
        assert closed_by_server(sock)
    assert rss_kib(guarded) - before < 100 * 1024


def test_without_the_key_a_chunked_post_is_refused_401_before_its_body_is_sent(
    guarded: Server,
) -> None:
    with connect(guarded) as sock:
        send_head(sock, "/api/batches", Transfer_Encoding="chunked", Authorization="Bearer no")

        answer = read_answer(sock)

        assert answer.status == 401
        assert "ANABRANCH_API_KEY" in answer.detail


def test_with_the_key_a_body_over_the_limit_is_refused_413(guarded: Server) -> None:
    with connect(guarded) as sock:
        send_head(
            sock, "/api/batches", Content_Length=str(200 * 2**20), Authorization=f"Bearer {KEY}"
        )

        assert read_answer(sock).status == 413


@pytest.mark.parametrize("path", ["/api/health", "/api/openapi.json", "/api/docs"])
def test_the_health_check_and_the_docs_stay_open_without_the_key(
    guarded: Server, path: str
) -> None:
    origin = guarded.url.removesuffix("/api")

    assert httpx.get(origin + path).status_code == 200
