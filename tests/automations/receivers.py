"""Real receivers on loopback for notification and webhook tests: an HTTP server and an SMTP
server that record what arrives, so a test asserts on delivered bytes instead of on mocks.

Both are context managers and wait on a condition (``wait_for``), never by polling.
From another test directory, import them as ``from automations.receivers import ...``
(``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, TypeVar

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

T = TypeVar("T")


class _Arrivals(Generic[T]):
    """What arrived, in order, guarded by a condition so readers can wait for a count."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._items: list[T] = []
        self._changed = threading.Condition()

    def add(self, item: T) -> None:
        with self._changed:
            self._items.append(item)
            self._changed.notify_all()

    def snapshot(self) -> list[T]:
        with self._changed:
            return list(self._items)

    def wait_for(self, count: int, timeout: float) -> list[T]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._items) >= count, timeout):
                raise AssertionError(
                    f"expected {count} {self._what} within {timeout}s, "
                    f"{len(self._items)} arrived: {self._items!r}"
                )
            return list(self._items)


@dataclass(frozen=True)
class ReceivedRequest:
    """One HTTP request as it arrived; ``arrived`` is ``time.monotonic()``."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    arrived: float

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


class HTTPReceiver:
    """An HTTP server on 127.0.0.1 that records every request and answers a script.

    ``statuses`` are answered in order, then ``then`` forever: ``HTTPReceiver([503, 503])``
    fails twice and then accepts; ``HTTPReceiver(then=500)`` always fails. With
    ``hold=True`` each request is recorded and then left unanswered until ``release()``
    (or the receiver closes), to exercise a client's timeout.
    """

    def __init__(
        self,
        statuses: Sequence[int] = (),
        *,
        then: int = 200,
        answer: bytes = b"ok",
        hold: bool = False,
    ) -> None:
        self._script = list(statuses)
        self._then = then
        self._answer = answer
        self._released = threading.Event()
        if not hold:
            self._released.set()
        self._lock = threading.Lock()
        self._arrivals: _Arrivals[ReceivedRequest] = _Arrivals("HTTP requests")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        # shutdown() waits for the serving loop to notice, up to one poll interval.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), name="http-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def requests(self) -> list[ReceivedRequest]:
        return self._arrivals.snapshot()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """All requests once at least ``count`` arrived; AssertionError after ``timeout``."""
        return self._arrivals.wait_for(count, timeout)

    def answer_with(self, statuses: Sequence[int] = (), *, then: int = 200) -> None:
        """Replace the script for the requests still to come."""
        with self._lock:
            self._script, self._then = list(statuses), then

    def release(self) -> None:
        """Answer the held requests and every later one."""
        self._released.set()

    def __enter__(self) -> HTTPReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _next_status(self) -> int:
        with self._lock:
            return self._script.pop(0) if self._script else self._then

    def _record(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        request = ReceivedRequest(
            method=handler.command,
            path=handler.path,
            headers=dict(handler.headers.items()),
            body=body,
            json=parsed,
            arrived=time.monotonic(),
        )
        self._arrivals.add(request)
        self._released.wait()
        status = self._next_status()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(self._answer)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(self._answer)
        except OSError:
            pass  # the client gave up (a held request past its timeout)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                receiver._record(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a test's output is its assertions, not an access log

        return Handler


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the SMTP server accepted it."""

    mail_from: str
    rcpt_tos: list[str]
    subject: str
    body: str
    headers: dict[str, str]


class _MailHandler:
    def __init__(self, arrivals: _Arrivals[ReceivedMail]) -> None:
        self._arrivals = arrivals

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        part = message.get_body(preferencelist=("plain", "html"))
        self._arrivals.add(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                subject=str(message["Subject"] or ""),
                body=part.get_content() if part is not None else "",
                headers={k: str(v) for k, v in message.items()},
            )
        )
        return "250 Message accepted"


class _BoundController(Controller):
    """aiosmtpd's Controller over a socket bound before it starts: it would otherwise need
    a fixed port (it connects to its own ``port`` to check it is up, so 0 does not work)."""

    def __init__(self, handler: Any, sock: socket.socket) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port)
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


class SMTPReceiver:
    """A plain SMTP server (no TLS, no login) on 127.0.0.1 recording every message."""

    def __init__(self) -> None:
        self._arrivals: _Arrivals[ReceivedMail] = _Arrivals("mails")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._controller = _BoundController(_MailHandler(self._arrivals), sock)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def mails(self) -> list[ReceivedMail]:
        return self._arrivals.snapshot()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """All mails once at least ``count`` arrived; AssertionError after ``timeout``."""
        return self._arrivals.wait_for(count, timeout)

    def __enter__(self) -> SMTPReceiver:
        self._controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._controller.stop()
