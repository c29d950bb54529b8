"""What the deployment, work-pool and work-queue commands share: the output option, parsing
of ``key=value`` pairs, numbers and times, and turning bad input into a one-line error.

A bad value is an error naming the option and the value, with exit code 1, like every other
error of the CLI (typer's own usage errors are boxes with exit code 2).
"""

from __future__ import annotations

import enum
import functools
import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import pydantic
import typer

from anabranch.cli import render
from anabranch.schemas.concurrency import MAX_STORED_INT

F = TypeVar("F", bound=Callable[..., Any])


class Output(str, enum.Enum):
    table = "table"
    json = "json"


OUTPUT = typer.Option(Output.table, "--output", "-o", help="table for people, json for scripts.")
# A negative number ("-1") would otherwise read as an unknown option; it reaches the parsers
# below instead and gets a message about the value.
NEGATIVE_NUMBERS_AS_ARGUMENTS = {"ignore_unknown_options": True}


def fail(message: str) -> NoReturn:
    render.error(message)
    raise typer.Exit(1)


def input_errors(command: F) -> F:
    """Report a ValueError from the store as the input's fault, in one line: it is what the
    server answers 400 for, and the embedded store raises it as is."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except pydantic.ValidationError as exc:
            fail(validation_message(exc))
        except ValueError as exc:
            fail(str(exc))

    return run  # type: ignore[return-value]


def validation_message(exc: pydantic.ValidationError) -> str:
    """A pydantic ValidationError in one line: each field and what is wrong with it."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return f"Invalid {exc.title}: " + "; ".join(problems) + "."


def parameters(pairs: list[str], option: str = "--param") -> dict[str, Any]:
    """``key=value`` pairs; a value that parses as JSON is that JSON (``x=3`` is 3,
    ``xs=[1,2]`` a list), any other value is the string as typed (``name=abc``).

    Strict JSON: ``NaN``, ``Infinity`` and numbers too large for a float (``1e400``) are no
    JSON numbers, so they stay the strings typed rather than arrive as null."""
    parsed: dict[str, Any] = {}
    for key, value in (split_pair(pair, option) for pair in pairs):
        try:
            parsed[key] = json.loads(
                value, parse_constant=_not_json_number, parse_float=_finite_float
            )
        except ValueError:
            parsed[key] = value
    return parsed


def _not_json_number(text: str) -> float:
    raise ValueError(f"{text} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is too large for a JSON number")
    return number


def split_pair(pair: str, option: str) -> tuple[str, str]:
    key, equals, value = pair.partition("=")
    if not equals or not key:
        fail(f"{option} takes KEY=VALUE, got {pair!r}.")
    return key, value


def whole_number(
    value: str, what: str, *, minimum: int = 0, maximum: int = MAX_STORED_INT
) -> int:
    """``value`` as an int from ``minimum`` to ``maximum`` (by default the largest the
    databases store), or a one-line error naming ``what`` and the range."""
    try:
        parsed = int(value)
    except ValueError:
        parsed = minimum - 1
    if parsed < minimum:
        fail(f"{what} must be a whole number, {minimum} or more; got {typed(value)}.")
    if parsed > maximum:
        fail(f"{what} must be at most {maximum:,}; got {typed(value)}.")
    return parsed


def typed(value: str) -> str:
    """What the user typed, for an error message: quoted, and cut short if it is long."""
    return repr(value) if len(value) <= 40 else f"{value[:30]!r}... ({len(value):,} characters)"


def seconds(value: str, what: str) -> float:
    try:
        parsed = float(value)
    except ValueError:
        parsed = -1.0
    if not parsed >= 0 or parsed == float("inf"):
        fail(f"{what} must be a number of seconds, 0 or more; got {value!r}.")
    return parsed


def moment(value: str, what: str) -> datetime:
    """An ISO 8601 date or time; without a UTC offset it is local time."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{what} must be an ISO 8601 date or time like 2025-03-01 or "
             f"2025-03-01T06:00:00+00:00; got {value!r}.")
    return parsed if parsed.tzinfo is not None else parsed.astimezone()


def deployment_name(value: str) -> str:
    flow_name, slash, name = value.partition("/")
    if not slash or not flow_name or not name:
        fail(
            f"{value!r} is not a deployment name; address a deployment as "
            "FLOW/DEPLOYMENT, e.g. etl/daily (`anabranch deployment ls` lists them)."
        )
    return value
