"""An operation as an HTTP request, and an HTTP answer as its result or its error: what the
sync and the async HTTP clients share, so that only their waiting differs.

Path parameters are percent-encoded whole (a name may hold "/"); the other parameters travel
as query strings (GET, DELETE) or as one JSON object (POST, PATCH), or as the whole body
when the operation names one. An error arrives as ``{"detail", "error", ...}`` and is raised
again as the class the server named, with the same message and fields.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pydantic_core

from anabranch import _clock, exceptions
from anabranch.exceptions import AnabranchError, InvalidRequest, ServerUnavailable
from anabranch.operations import Operation
from anabranch.schemas import RecordBatch
from anabranch.schemas.text import storable_batch
from anabranch.schemas.unset import UNSET

# Requests bigger than this go in parts where they can (record batches): servers refuse
# bodies over 8 MiB by default (ANABRANCH_SERVER_MAX_BODY_BYTES).
MAX_BODY_BYTES = 2 * 1024 * 1024
# The builtin errors an operation may raise as they are (a naive datetime's ValueError).
_BUILTIN_ERRORS = {error.__name__: error for error in (ValueError, TypeError, LookupError)}


@dataclass(frozen=True)
class WireRequest:
    method: str
    path: str
    params: dict[str, Any]
    content: bytes | None
    timeout: httpx.Timeout
    resend: bool

    def send_with(self, session: httpx.Client) -> httpx.Response:
        return session.request(
            self.method, self.path, params=self.params, content=self.content,
            timeout=self.timeout,
        )


def requests_for(
    op: Operation, arguments: dict[str, Any], timeout: httpx.Timeout
) -> list[WireRequest]:
    """The request(s) carrying the call: one, or a record batch too big for one in parts."""
    path = op.path
    for name in op.path_parameters:
        path = _with_segment(path, name, quote(str(arguments[name]), safe=""))
    params: dict[str, Any] = {}
    contents: list[bytes | None] = [None]
    if op.uses_query:
        params = {
            name: _query_value(arguments[name])
            for name in op.other_parameters
            if arguments[name] is not None and arguments[name] != []
        }
    elif op.body is not None:
        contents = _bodies(arguments[op.body])
    elif op.other_parameters:
        values = {n: arguments[n] for n in op.other_parameters if arguments[n] is not UNSET}
        contents = [_json(values)]
    timeout = _timeout_for(op, arguments, timeout)
    resend = op.may_resend(arguments)
    return [
        WireRequest(op.method, path.lstrip("/"), params, content, timeout, resend)
        for content in contents
    ]


def result_of(op: Operation, response: httpx.Response) -> Any:
    """The result of a successful answer."""
    if op.result_adapter is None:
        return None
    return op.result_adapter.validate_json(response.content)


def refusal(
    op: Operation, response: httpx.Response, request: WireRequest, shown_url: str
) -> Exception:
    """The error a 4xx answer means: the class the server named, with its message."""
    body = _body(response)
    detail = _detail(body, response)
    code = response.status_code
    where = f"{request.method} /{request.path}"
    if code in (401, 403):
        return AnabranchError(
            f"The anabranch server at {shown_url} refused {where}: {detail} "
            "Set ANABRANCH_API_KEY to the server's API key."
        )
    named = body.get("error") if isinstance(body, dict) else None
    if isinstance(named, str):
        error = _error_class(named)
        if error is not None:
            if issubclass(error, AnabranchError):
                return error.from_wire(detail, body)
            return error(detail)
    if code == 404 and detail == "Not Found":  # no such route, rather than no such object
        return AnabranchError(
            f"The server at {shown_url} has no endpoint {where}; is it an anabranch server, "
            "and does ANABRANCH_API_URL end in /api?"
        )
    if code == 422:
        invalid = next((e for e in op.errors if issubclass(e, ValueError)), InvalidRequest)
        return invalid(f"{op.name}: {detail}")
    return AnabranchError(
        f"The anabranch server at {shown_url} refused {where} ({code}): {detail}"
    )


def server_failure(
    response: httpx.Response, request: WireRequest, shown_url: str, attempts: int
) -> ServerUnavailable:
    return ServerUnavailable(
        f"The anabranch server at {shown_url} failed on {request.method} /{request.path} with "
        f"{response.status_code} ({_detail(_body(response), response)}) {attempts} time(s); "
        "see its log."
    )


def unanswered(
    request: WireRequest, exc: Exception, shown_url: str, attempts: int, seconds: float
) -> ServerUnavailable:
    tries = f"{attempts} attempts in {seconds:.1f} s" if attempts > 1 else "1 attempt"
    return ServerUnavailable(
        f"The anabranch server at {shown_url} did not answer {request.method} /{request.path} "
        f"({type(exc).__name__}: {exc or 'no detail'}; {tries}). Is `anabranch server "
        "start` running there? ANABRANCH_API_URL says where clients look for it."
    )


class Attempts:
    """The retry policy of one request, for a driver that sends and waits its own way (the
    sync client sleeps, the async one awaits): ``after(outcome)`` returns the answer to
    keep (a success or a 4xx), or how long to wait before sending again, or raises
    ServerUnavailable once the client's retry budget is spent. A request whose answer was
    lost is sent again only when that is safe (``WireRequest.resend``)."""

    def __init__(
        self, request: WireRequest, retry_seconds: float, first_delay: float, shown_url: str
    ) -> None:
        self.request = request
        self.shown_url = shown_url
        self.backoff = _clock.Backoff(retry_seconds, first=first_delay)

    @property
    def retrying(self) -> bool:
        return self.backoff.attempts > 1

    def after(self, outcome: httpx.Response | httpx.TransportError) -> httpx.Response | float:
        if isinstance(outcome, httpx.Response) and outcome.status_code < 500:
            return outcome
        if isinstance(outcome, httpx.TransportError):
            lost_answer = not never_sent(outcome)
            if lost_answer and not self.request.resend:
                raise self._unanswered(outcome) from outcome
        delay = self.backoff.next_delay()
        if delay is not None:
            return delay
        if isinstance(outcome, httpx.Response):
            raise server_failure(outcome, self.request, self.shown_url, self.backoff.attempts)
        raise self._unanswered(outcome) from outcome

    def _unanswered(self, exc: Exception) -> ServerUnavailable:
        return unanswered(
            self.request, exc, self.shown_url, self.backoff.attempts, self.backoff.elapsed()
        )


def never_sent(exc: httpx.TransportError) -> bool:
    """True when the failure proves the server never got the request (safe to resend)."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def _with_segment(path: str, name: str, value: str) -> str:
    for pattern in (f"{{{name}}}", f"{{{name}:path}}"):
        path = path.replace(pattern, value)
    return path


def _query_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_query_value(item) for item in value]
    if isinstance(value, (uuid.UUID, enum.Enum)):
        return str(value.value if isinstance(value, enum.Enum) else value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _json(value: Any) -> bytes:
    """The JSON of a body; NaN and infinity written as such, for the server to refuse by
    name (JSON has no such numbers, and writing them as null would change the value)."""
    try:
        return pydantic_core.to_json(value, inf_nan_mode="constants")
    except ValueError:
        if isinstance(value, RecordBatch):  # text JSON can not carry: replaced as stored
            return pydantic_core.to_json(storable_batch(value), inf_nan_mode="constants")
        raise


def _bodies(value: Any) -> list[bytes | None]:
    """The body's JSON; a record batch too big for one request, in parts small enough."""
    content = _json(value)
    if len(content) <= MAX_BODY_BYTES or not isinstance(value, RecordBatch) or len(value) < 2:
        return [content]
    first, second = value.halves()
    return [*_bodies(first), *_bodies(second)]


def _timeout_for(op: Operation, arguments: dict[str, Any], base: httpx.Timeout) -> httpx.Timeout:
    """Room for the server to hold a long poll, or to compute a long answer."""
    read = base.read
    if op.answer_seconds is not None:
        read = op.answer_seconds
    held = op.held_seconds(arguments)
    if held and read is not None:
        read += held
    return httpx.Timeout(base.connect, read=read, write=base.write, pool=base.pool)


def _error_class(name: str) -> type[Exception] | None:
    found = getattr(exceptions, name, None)
    if isinstance(found, type) and issubclass(found, AnabranchError):
        return found
    return _BUILTIN_ERRORS.get(name)


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detail(body: Any, response: httpx.Response) -> str:
    """The server's message: FastAPI's ``detail``, a string or a list of validation errors."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if detail is None:
        return response.text.strip() or response.reason_phrase
    if isinstance(detail, list):
        return "; ".join(_validation_error(error) for error in detail)
    return str(detail)


def _validation_error(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg', error)}"
