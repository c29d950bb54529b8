"""Delivery of the two outbound actions: a notification through Apprise and an HTTP webhook.

Each call makes one attempt and raises DeliveryError saying why it failed, with secrets in
the URL masked; the caller retries with back-off and records every outcome. Both are
blocking and safe to call from several threads at once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import apprise
import httpx

from anabranch._redact import mask_url

_APPRISE_DOCS = "https://github.com/caronc/apprise/wiki"
_MAX_DETAIL = 500
_MAX_ANSWER = 200


class DeliveryError(Exception):
    """A notification or webhook that did not arrive; the message says where and why."""


# Apprise reports a failure only in its log, through one global logger, from the calling
# thread or from its own workers (which run in a copy of the caller's context). A context
# variable therefore hands each call its own lines, however many calls run at once.
_CALL_LOG: ContextVar[list[str] | None] = ContextVar("anabranch_apprise_log", default=None)
_handler_lock = threading.Lock()
_handler: logging.Handler | None = None


class _CallLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        lines = _CALL_LOG.get()
        if lines is not None:
            lines.append(record.getMessage())


@contextmanager
def _apprise_log() -> Iterator[list[str]]:
    """Apprise's warnings and errors logged while inside, for this call only."""
    global _handler
    with _handler_lock:
        if _handler is None:
            _handler = _CallLogHandler(logging.WARNING)
            logging.getLogger("apprise").addHandler(_handler)
    lines: list[str] = []
    token = _CALL_LOG.set(lines)
    try:
        yield lines
    finally:
        _CALL_LOG.reset(token)


def send_notification(url: str, subject: str, body: str, *, timeout: float = 10.0) -> None:
    """Send ``subject`` and ``body`` (plain text) through the Apprise URL ``url``.

    ``timeout`` bounds each connection and each read; Apprise makes no retries of its own
    and does not space out requests. DeliveryError when Apprise does not know the URL or
    reports a failure (with what it logged).
    """
    masked = mask_url(url)
    # Sequential delivery keeps Apprise 1.x in the calling thread, where _CALL_LOG is set.
    asset = apprise.AppriseAsset(async_mode=False)
    with _apprise_log() as log:
        plugin = apprise.Apprise.instantiate(url, asset=asset)
        if plugin is None:
            scheme = url.partition("://")[0] if "://" in url else ""
            raise DeliveryError(
                f"{masked} is not an Apprise URL Apprise can use (scheme {scheme!r}): "
                f"{_summary(log, url, masked)}. The URL forms of each service are at "
                f"{_APPRISE_DOCS}"
            )
        _bound(plugin, timeout)
        notifier = apprise.Apprise(asset=asset)
        notifier.add(plugin)
        delivered = notifier.notify(body=body, title=subject, body_format=apprise.NotifyFormat.TEXT)
    if not delivered:
        raise DeliveryError(f"Apprise could not deliver to {masked}: {_summary(log, url, masked)}")


def _bound(plugin: Any, timeout: float) -> None:
    plugin.socket_connect_timeout = min(plugin.socket_connect_timeout, timeout)
    plugin.socket_read_timeout = min(plugin.socket_read_timeout, timeout)
    # Apprise 2 retries a service when its URL says ?retry=N; our caller retries instead.
    plugin.retry = 0
    # The throttle waits 5.5 s between requests of one plugin object: between the targets
    # of one URL (three Slack channels would take 11 s), as each call has its own object.
    plugin.request_rate_per_sec = 0


def _summary(log: list[str], url: str, masked: str) -> str:
    lines = dict.fromkeys(line.strip().replace(url, masked) for line in log if line.strip())
    text = "; ".join(lines) or "Apprise logged no reason"
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


_client_lock = threading.Lock()
_client: httpx.Client | None = None


def _http_client() -> httpx.Client:
    """One client for every webhook (its connection pool and TLS setup are shared),
    created on first use: httpx.Client is safe to use from several threads."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client()
        return _client


def call_webhook(
    url: str, method: str, headers: dict[str, str], payload: str, *, timeout: float = 10.0
) -> int:
    """Send ``payload`` as the body of a ``method`` request to ``url``; the status code.

    Content-Type is application/json when the payload is JSON and ``headers`` name none.
    DeliveryError on an answer outside 2xx (with its first 200 characters), a timeout or
    a failed connection.
    """
    masked = mask_url(url)
    sent = dict(headers)
    if not any(k.lower() == "content-type" for k in sent) and _is_json(payload):
        sent["Content-Type"] = "application/json"
    try:
        answer = _http_client().request(
            method, url, headers=sent, content=payload.encode(), timeout=timeout
        )
    except httpx.TimeoutException as exc:
        raise DeliveryError(
            f"{method} {masked} timed out after {timeout:g} s ({type(exc).__name__})"
        ) from exc
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        reason = str(exc).replace(url, masked) or type(exc).__name__
        raise DeliveryError(f"{method} {masked} failed: {reason}") from exc
    if not 200 <= answer.status_code < 300:
        raise DeliveryError(
            f"{method} {masked} answered {answer.status_code} {answer.reason_phrase}: "
            f"{answer.text[:_MAX_ANSWER]!r}"
        )
    return answer.status_code


def _is_json(payload: str) -> bool:
    try:
        json.loads(payload)
    except ValueError:
        return False
    return True
