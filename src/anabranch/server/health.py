"""``GET /api/health``: ready when the app has started and its database answers."""

from __future__ import annotations

from importlib.metadata import version as distribution_version
from typing import Literal

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from anabranch.database import get_engine

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    version: str = Field(default_factory=lambda: distribution_version("anabranch"))
    detail: str | None = None


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(request: Request, response: Response) -> Health:
    """Readiness (the database is migrated and reachable) and the server's anabranch version.
    Needs no API key."""
    if request.app.state.client is None:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Health(status="unavailable", detail="The server is still starting.")
    try:
        with get_engine(request.app.state.database_url).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        cause = getattr(exc, "orig", None) or exc
        return Health(status="unavailable", detail=f"The database does not answer: {cause}")
    return Health(status="ok")
