"""The JSON-only pointer to a persisted result that the database and the wire carry."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ResultRef(BaseModel):
    """Where a result lives (``storage`` URL + ``key``) and how to read it (``serializer``).

    A reference read back from the store is only as trustworthy as whoever wrote it (any API
    client can): ``load_result`` reads it only from trusted storage and only with this
    ``serializer``, refusing a file whose header names another one."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    storage: str
    key: str
    serializer: str
