"""What a request may cost the server before a route sees it: a pure ASGI middleware.

Routes read and parse a whole body before they run, so everything here happens at the
byte level, before a route (or FastAPI's body parsing) is involved:

- with an API key, a request that does not carry it is answered 401 before any body byte
  is read (only ``GET`` of the health check and the API docs stay open);
- a body declaring a Content-Length above ``max_body_bytes`` is answered 413 at once; a
  chunked body is counted as it arrives and answered 413 as soon as it passes the limit;
- a body that has not arrived in full ``body_timeout_seconds`` after the request started
  (a client sending a few bytes a second) is answered 408.

Every such answer, and any answer given before the request's body was read to its end,
carries ``Connection: close``: the server never reads the rest of a body it will not use,
so the connection is closed in bounded time. Errors have the shape of every other error of
the API: ``{"detail": "..."}``.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anabranch.server.security import key_problem
from anabranch.server.ui.session import LOGIN_PATH, has_session, is_open_page

API_PREFIX = "/api"
_CLOSE = (b"connection", b"close")
_READ_METHODS = frozenset({"GET", "HEAD"})
_DISCONNECT: Message = {"type": "http.disconnect"}


class RequestLimits:
    """Authenticate, then bound the size and arrival time of each HTTP request's body.

    ``open_paths`` are the paths a ``GET`` (or ``HEAD``) may read without the API key.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        open_paths: frozenset[str],
        max_body_bytes: int,
        body_timeout_seconds: float,
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.open_paths = open_paths
        self.max_body_bytes = max_body_bytes
        self.body_timeout_seconds = body_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _body_framing(scope)
        has_body = chunked or bool(declared)
        if self.api_key is not None and not self._is_open(scope):
            if not _is_api(scope["path"]):
                if not has_session(_header(scope, b"cookie"), self.api_key):
                    await _to_login(send, scope, has_body)
                    return
            else:
                problem = key_problem(_header(scope, b"authorization"), self.api_key)
                if problem is not None:
                    headers = [(b"www-authenticate", b"Bearer")]
                    await _answer(send, 401, problem, has_body, headers)
                    return
        if declared is not None and declared > self.max_body_bytes:
            await _answer(send, 413, self.too_large(f"declares {declared:,} bytes"), has_body)
            return
        await _BoundedRequest(self, receive, send, has_body).run(scope)

    def _is_open(self, scope: Scope) -> bool:
        method, path = scope["method"], scope["path"]
        if not _is_api(path):
            return is_open_page(method, path)
        return method in _READ_METHODS and path in self.open_paths

    def too_large(self, what: str) -> str:
        limit = self.max_body_bytes
        return (
            f"The request body {what}, more than this server accepts ({limit:,} bytes, "
            f"{limit / 2**20:.1f} MiB). Send less per request, or raise "
            "ANABRANCH_SERVER_MAX_BODY_BYTES on the server."
        )

    def too_slow(self) -> str:
        return (
            f"The request body did not arrive in full within {self.body_timeout_seconds:g} s "
            "(ANABRANCH_SERVER_BODY_TIMEOUT_SECONDS on the server); the connection is closed."
        )


class _BoundedRequest:
    """One request passed to the application through a receive that counts the body's
    bytes against the limit and its arrival against the deadline.

    Once the request is refused (413 or 408, answered here), the application's receive
    says the client disconnected and whatever it sends is dropped: the client already has
    its answer."""

    def __init__(self, limits: RequestLimits, receive: Receive, send: Send, has_body: bool):
        self.limits = limits
        self._receive = receive
        self._send = send
        self.body_complete = not has_body
        self.received = 0
        self.deadline = anyio.current_time() + limits.body_timeout_seconds
        self.response_started = False
        self.refused = False

    async def run(self, scope: Scope) -> None:
        try:
            await self.limits.app(scope, self.receive, self.send)
        except Exception:
            # An application that was told the client left may fail reading the body
            # (ClientDisconnect): expected, and already answered.
            if not self.refused:
                raise

    async def receive(self) -> Message:
        if self.refused:
            return _DISCONNECT
        if self.body_complete:
            # Only a disconnect can come now (long polls listen for it): no deadline.
            return await self._receive()
        with anyio.move_on_after(self.deadline - anyio.current_time()):
            message = await self._receive()
            if message["type"] != "http.request":
                return message
            self.received += len(message.get("body", b""))
            if self.received > self.limits.max_body_bytes:
                what = f"reached {self.received:,} bytes"
                return await self._refuse(413, self.limits.too_large(what))
            if not message.get("more_body", False):
                self.body_complete = True
            return message
        return await self._refuse(408, self.limits.too_slow())

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.response_started = True
            if not self.body_complete:
                # Answered before the body was read to its end: do not read the rest.
                headers = [*message.get("headers", []), _CLOSE]
                message = {**message, "headers": headers}
        await self._send(message)

    async def _refuse(self, status: int, detail: str) -> Message:
        if not self.response_started:
            self.refused = True
            await _answer(self._send, status, detail, close=True)
        return _DISCONNECT


def _is_api(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


async def _to_login(send: Send, scope: Scope, has_body: bool) -> None:
    """A page asked for without a session: a page load goes to the login form (htmx is
    told to load it whole), anything else is refused."""
    if scope["method"] not in _READ_METHODS:
        await _answer(send, 401, "Enter the server's API key on the login page first.", has_body)
        return
    target = quote(scope["path"] + ("?" + scope["query_string"].decode("latin-1")
                                    if scope.get("query_string") else ""), safe="")
    location = f"{LOGIN_PATH}?next={target}".encode()
    headers = [(b"location", location), (b"hx-redirect", location), (b"content-length", b"0")]
    if has_body:
        headers.append(_CLOSE)
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _body_framing(scope: Scope) -> tuple[int | None, bool]:
    """(declared Content-Length or None, whether the body is chunked)."""
    declared: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = None  # the HTTP server refuses a malformed length itself
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    return declared, chunked


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return bytes(value)
    return None


async def _answer(
    send: Send,
    status: int,
    detail: str,
    close: bool,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps({"detail": detail}).encode()
    all_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(headers or []),
    ]
    if close:
        all_headers.append(_CLOSE)
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
