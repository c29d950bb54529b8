"""How errors become HTTP answers: the input's fault is a 4xx naming the problem.

A missing object is 404, a rule the request breaks (a negative limit, a naive datetime, a
number the database can not hold) is 400, a batch holding a state change the state rules
forbid is 409 (the rest of the batch is stored), and a database that can not be reached is
503, which clients retry. Anything else is a bug in anabranch, answered 500 and logged.

A 400 for one of anabranch's own errors says which in ``"error"`` (``"InvalidName"``), so
the HTTP client raises the class the embedded store raises. A request the route's schema
refuses is FastAPI's 422, ``{"detail": [{"loc": [...], "msg": ..., "input": ...}]}``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pydantic
import sqlalchemy as sa
from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from anabranch.exceptions import AnabranchError, InvalidStateTransition, ObjectNotFound

logger = logging.getLogger("anabranch.server")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ObjectNotFound, _not_found)
    app.add_exception_handler(InvalidStateTransition, _refused_transition)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(ValueError, _bad_request)
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(pydantic.ValidationError, _internal_error)
    app.add_exception_handler(sa.exc.StatementError, _database_error)


def _answer(code: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=code)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return _answer(status.HTTP_404_NOT_FOUND, str(exc))


async def _refused_transition(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidStateTransition)
    # "refused" lets the HTTP client raise the same error, with the same run ids.
    refused = [{"run_id": str(run_id), "rule": rule} for run_id, rule in exc.refused]
    return JSONResponse(
        {"detail": str(exc), "refused": refused}, status_code=status.HTTP_409_CONFLICT
    )


async def _bad_request(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, AnabranchError):
        return JSONResponse(
            {"detail": str(exc), "error": type(exc).__name__},
            status_code=status.HTTP_400_BAD_REQUEST,
        )
    return _answer(status.HTTP_400_BAD_REQUEST, str(exc))


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
