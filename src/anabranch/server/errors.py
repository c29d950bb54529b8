"""How errors become HTTP answers: the input's fault is a 4xx naming the problem.

A missing object is 404, a rule the request breaks (a negative limit, a naive datetime, a
number the database can not hold) is 400, a state the rules forbid (a final run moving on,
cancelling a run that ended) is 409, and a database that can not be reached is 503, which
clients retry. Anything else is a bug in anabranch, answered 500 and logged.

Every error of anabranch's own crosses by name: ``{"detail": message, "error": "ClassName",
...its wire_fields()}``, and the HTTP client raises that class again with that message. A
request the route's schema refuses is FastAPI's 422, ``{"detail": [{"loc": [...], "msg":
...}]}``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import pydantic
import sqlalchemy as sa
from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from anabranch.exceptions import (
    AnabranchError,
    InvalidStateTransition,
    ObjectAlreadyExists,
    ObjectNotFound,
    RunAlreadyFinal,
    StoreUnavailable,
    StoreUnusable,
)

logger = logging.getLogger("anabranch.server")

# The status of each kind of anabranch error, by its nearest class here; the rest are 400.
_STATUS: dict[type[AnabranchError], int] = {
    ObjectNotFound: status.HTTP_404_NOT_FOUND,
    InvalidStateTransition: status.HTTP_409_CONFLICT,
    ObjectAlreadyExists: status.HTTP_409_CONFLICT,
    RunAlreadyFinal: status.HTTP_409_CONFLICT,
    StoreUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    StoreUnusable: status.HTTP_503_SERVICE_UNAVAILABLE,
}


def status_of(error: type[AnabranchError]) -> int:
    for cls in error.__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return status.HTTP_400_BAD_REQUEST


def error_responses(errors: Sequence[type[AnabranchError]]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of an operation that raises ``errors``."""
    responses: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        entry = responses.setdefault(status_of(error), {"description": ""})
        said = f"{error.__name__}: {(error.__doc__ or '').split('.')[0].strip()}."
        entry["description"] = f"{entry['description']} {said}".strip()
    return responses


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AnabranchError, _anabranch_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(ValueError, _bad_request)
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(pydantic.ValidationError, _internal_error)
    app.add_exception_handler(sa.exc.StatementError, _database_error)


def _answer(code: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=code)


async def _anabranch_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AnabranchError)
    body = {"detail": str(exc), "error": type(exc).__name__, **exc.wire_fields()}
    return JSONResponse(body, status_code=status_of(type(exc)))


async def _bad_request(request: Request, exc: Exception) -> JSONResponse:
    # A builtin ValueError from the store (a naive datetime, say) crosses by name too.
    return JSONResponse(
        {"detail": str(exc), "error": type(exc).__name__ if type(exc) is ValueError else None},
        status_code=status.HTTP_400_BAD_REQUEST,
    )


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI's own answer, except that an input holding NaN or infinity (which Python's
    # json reads, though JSON has no such numbers) is quoted as text: written as it is, it
    # made the answer a 400 "Out of range float values are not JSON compliant" that named
    # no field.
    errors = _json_compliant(jsonable_encoder(exc.errors()))
    # By number: Starlette renamed its constant, and warns on the old name.
    return JSONResponse({"detail": errors}, status_code=422)


def _json_compliant(value: Any) -> Any:
    """``value`` (JSON-like) with each NaN and infinity as its repr (``'nan'``, ``'-inf'``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {key: _json_compliant(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_compliant(item) for item in value]
    return value


async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
    return _answer(status.HTTP_400_BAD_REQUEST, f"A value in the request is out of range: {exc}")


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # A pydantic ValidationError is a ValueError, but one raised inside a route means the
    # server built a bad object: that is anabranch's bug, not the caller's.
    logger.error("Internal error in %s %s", request.method, request.url.path, exc_info=exc)
    return _answer(status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error.")


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, sa.exc.StatementError)
    cause = exc.orig
    if isinstance(exc, sa.exc.OperationalError):
        logger.warning("Database unavailable in %s %s: %s", request.method, request.url, cause)
        return _answer(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"The database is unavailable: {cause}"
        )
    if isinstance(exc, sa.exc.DataError) or isinstance(cause, (ValueError, TypeError)):
        # A value the database refuses (out of range, NUL bytes, a naive datetime).
        return _answer(status.HTTP_400_BAD_REQUEST, f"The database refused a value: {cause}")
    if isinstance(cause, OverflowError):
        return _answer(status.HTTP_400_BAD_REQUEST, f"A value is out of range: {cause}")
    if isinstance(exc, sa.exc.IntegrityError):
        return _answer(status.HTTP_409_CONFLICT, f"The request conflicts with stored data: {cause}")
    return await _internal_error(request, exc)
