"""How errors become HTTP answers: the input's fault is a 4xx naming the problem.

A missing object is 404, a rule the request breaks (a negative limit, a naive datetime, a
number the database can not hold) is 400, a batch holding a state change the state rules
forbid is 409 (the rest of the batch is stored), and a database that can not be reached is
503, which clients retry. Anything else is a bug in anabranch, answered 500 and logged.
"""

from __future__ import annotations

import logging

import pydantic
import sqlalchemy as sa
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from anabranch.exceptions import InvalidStateTransition, ObjectNotFound

logger = logging.getLogger("anabranch.server")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ObjectNotFound, _not_found)
    app.add_exception_handler(InvalidStateTransition, _refused_transition)
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
    return _answer(status.HTTP_400_BAD_REQUEST, str(exc))


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
