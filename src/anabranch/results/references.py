"""The JSON-only pointer to a persisted result that the database and the wire carry."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ResultRef(BaseModel):
    """Where a result lives (``storage`` URL + ``key``) and how to read it (``serializer``)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    storage: str
    key: str
    serializer: str
