"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite has no time zones (it keeps text), PostgreSQL converts to the session's zone;
    normalising to UTC on the way in and out gives the same values on both. A naive datetime
    is refused: its zone is unknown, and guessing would store a wrong instant.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # Every run row carries five timestamps, so on SQLite this replaces SQLAlchemy's
        # pure-Python formatter with datetime.isoformat; the text is the same.
        return sqlite_datetime_text

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


_ZERO = timedelta(0)


def sqlite_datetime_text(value: datetime | None) -> str | None:
    """How a UTCDateTime is stored on SQLite: UTC text "YYYY-MM-DD HH:MM:SS.ffffff".

    The text is fixed width, so it sorts (and compares) by time; it is what SQLAlchemy's
    SQLite DateTime writes. The batch writer, which builds SQLite rows itself, formats with
    this too. %-formatting the fields takes half the time of ``isoformat``, whose UTC offset
    would only be cut off again, and a batch of 1,000 task runs holds 7,000 timestamps.
    """
    if value is None:
        return None
    # A zero offset needs no conversion, whatever tzinfo says so: the server's datetimes,
    # parsed from JSON "...Z", carry pydantic's own UTC tzinfo, and converting each of them
    # cost the server more than formatting. (A naive datetime's offset is None.)
    if value.tzinfo is not timezone.utc and value.utcoffset() != _ZERO:
        value = _as_utc(value)
    # %-formatting, not an f-string: with seven format specs it is almost twice as fast.
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is timezone.utc:
        return value
    if value.tzinfo is None:
        raise ValueError(
            f"Naive datetime {value.isoformat()} can not be stored: its time zone is unknown. "
            "Pass a timezone-aware datetime (anabranch._clock.now() gives one)."
        )
    return value.astimezone(timezone.utc)


def json_column(*, none_as_null: bool = False) -> sa.types.TypeEngine[Any]:
    """JSON on SQLite, JSONB (indexable, compact) on PostgreSQL.

    ``none_as_null=True`` stores Python None as SQL NULL rather than the JSON text 'null'.
    """
    return sa.JSON(none_as_null=none_as_null).with_variant(
        postgresql.JSONB(none_as_null=none_as_null), "postgresql"
    )
