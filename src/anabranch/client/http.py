"""The HTTP transport: every operation of the store over httpx to `anabranch server`
(ANABRANCH_API_URL), built from its declaration (``client._wire``), sync or awaited.

Connection failures and 5xx answers are retried with back-off for
ANABRANCH_CLIENT_RETRY_SECONDS (default 60), then reported as ServerUnavailable naming the
server; a request whose answer was lost is sent again only when the operation says it is
safe (slot requests carry the lease id they ask for, deployment runs an idempotency key). A
4xx answer raises the error the embedded client would have raised, by name.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import anyio
import httpx

from anabranch import _clock
from anabranch._redact import mask_passwords
from anabranch.client import _wire
from anabranch.client.aio import AsyncStoreOperations, OpensAsync
from anabranch.exceptions import AnabranchError
from anabranch.operations import Operation, StoreOperations
from anabranch.settings import get_settings

# Waits between attempts: 0.1 s doubling up to 2 s, within the client's retry budget.
FIRST_DELAY = 0.1
# Reads of the answer may wait on a busy database; connecting is quick or hopeless.
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class HTTPClient(StoreOperations, OpensAsync):
    """A client over the anabranch server at ``api_url`` (``http://host:4200/api``).

    One keep-alive connection pool serves every thread of the process; a forked child opens
    its own. ``api_key`` defaults to ANABRANCH_API_KEY and is sent as a bearer token.
    """

    def __init__(
        self,
        api_url: str,
        api_key: str | None = None,
        *,
        retry_seconds: float | None = None,
        first_delay: float = FIRST_DELAY,
        timeout: httpx.Timeout = TIMEOUT,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        # What messages show: the URL without a password it may carry.
        self.shown_url = mask_passwords(self.api_url)
        if api_key is None or retry_seconds is None:
            settings = get_settings()
            api_key = settings.api_key if api_key is None else api_key
            if retry_seconds is None:
                retry_seconds = settings.client_retry_seconds
        self.headers = headers_for(api_key)
        self.retry_seconds = retry_seconds
        self.first_delay = first_delay
        self.timeout = timeout
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._http = self._new_session()
        self._closed = False
        self._stats = {"requests": 0, "retries": 0}

    def __repr__(self) -> str:
        return f"HTTPClient({self.shown_url!r})"

    def _call(self, operation: Operation, arguments: dict[str, Any]) -> Any:
        if self._closed:
            raise AnabranchError(f"{self!r} is closed; get a new one with get_client().")
        result = None
        for request in _wire.requests_for(operation, arguments, self.timeout):
            response = self._send(request)
            if response.status_code >= 400:
                raise _wire.refusal(operation, response, request, self.shown_url)
            result = _wire.result_of(operation, response)
        return result

    def _send(self, request: _wire.WireRequest) -> httpx.Response:
        """The answer (a success or a 4xx), after retrying what may be retried."""
        attempts = _wire.Attempts(request, self.retry_seconds, self.first_delay, self.shown_url)
        while True:
            self._count(retry=attempts.retrying)
            try:
                outcome = attempts.after(request.send_with(self._session()))
            except httpx.TransportError as exc:
                outcome = attempts.after(exc)
            if isinstance(outcome, httpx.Response):
                return outcome
            _clock.sleep(outcome)

    def _count(self, *, retry: bool) -> None:
        with self._lock:
            self._stats["requests"] += 1
            self._stats["retries"] += retry

    def async_client(self) -> AsyncHTTPClient:
        return AsyncHTTPClient(self)

    def statistics(self) -> dict[str, int]:
        """Requests sent (each attempt counts) and how many of them were retries."""
        with self._lock:
            return dict(self._stats)

    def close(self) -> None:
        """Close the connection pool; the client can not be used afterwards."""
        self._closed = True
        self._http.close()

    def __enter__(self) -> HTTPClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None

    def _new_session(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url + "/",
            headers=self.headers,
            timeout=self.timeout,
            # Loading the CA bundle costs ~50 ms, in every process; plain http needs none.
            verify=self.api_url.startswith("https://"),
        )

    def _session(self) -> httpx.Client:
        if self._pid != os.getpid():
            # A forked child must not share the parent's sockets, nor a lock that another
            # parent thread may have held at the fork: it makes its own.
            self._lock = threading.Lock()
            self._http = self._new_session()
            self._pid = os.getpid()
        return self._http


class AsyncHTTPClient(AsyncStoreOperations):
    """The server, awaited, with the sync HTTPClient's settings (URL, key, retry budget)."""

    def __init__(self, sync_client: Any) -> None:
        self.sync_client = sync_client
        self._http = httpx.AsyncClient(
            base_url=sync_client.api_url + "/",
            headers=sync_client.headers,
            timeout=sync_client.timeout,
            verify=sync_client.api_url.startswith("https://"),
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"AsyncHTTPClient({self.sync_client.shown_url!r})"

    async def _acall(self, operation: Operation, arguments: dict[str, Any]) -> Any:
        if self._closed:
            raise AnabranchError(f"{self!r} is closed; get a new one with get_client().")
        result = None
        for request in _wire.requests_for(operation, arguments, self.sync_client.timeout):
            response = await self._send(request)
            if response.status_code >= 400:
                raise _wire.refusal(operation, response, request, self.sync_client.shown_url)
            result = _wire.result_of(operation, response)
        return result

    async def _send(self, request: _wire.WireRequest) -> httpx.Response:
        """The answer (a success or a 4xx), after retrying what may be retried, by the
        policy the sync client follows."""
        sync = self.sync_client
        attempts = _wire.Attempts(request, sync.retry_seconds, sync.first_delay, sync.shown_url)
        while True:
            try:
                outcome = attempts.after(
                    await self._http.request(
                        request.method, request.path, params=request.params,
                        content=request.content, timeout=request.timeout,
                    )
                )
            except httpx.TransportError as exc:
                outcome = attempts.after(exc)
            if isinstance(outcome, httpx.Response):
                return outcome
            await anyio.sleep(outcome)

    async def aclose(self) -> None:
        self._closed = True
        await self._http.aclose()


def headers_for(api_key: str | None) -> dict[bytes, bytes]:
    """The headers every request carries; the key as bytes, since it may hold any
    character and httpx would send str headers as ASCII."""
    headers = {b"Content-Type": b"application/json"}
    if api_key:
        headers[b"Authorization"] = f"Bearer {api_key}".encode()
    return headers
