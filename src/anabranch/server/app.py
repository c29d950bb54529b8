"""``create_app()``: the versioned REST API under ``/api``, over one database.

The routes hold no state of their own: every request borrows a connection from the
database URL's engine, and the background services only run idempotent statements. So any
number of server processes may serve one PostgreSQL database side by side.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version as distribution_version
from typing import Any

import anyio
from fastapi import Depends, FastAPI

from anabranch.client.embedded import EmbeddedClient
from anabranch.database import get_engine
from anabranch.server import health, services
from anabranch.server.errors import install_error_handlers
from anabranch.server.limits import API_PREFIX, RequestLimits
from anabranch.server.operations import openapi_bodies, operations_router
from anabranch.server.security import require_api_key
from anabranch.server.ui import DOCS_PATH, RunWatcher, install_ui
from anabranch.server.waiting import ChangeFeed
from anabranch.settings import get_settings


def create_app(
    database_url: str | None = None, api_key: str | None = None, ui_url: str | None = None
) -> FastAPI:
    """The API application over ``database_url`` (default: ANABRANCH_DATABASE_URL, else the
    SQLite file in ANABRANCH_HOME).

    With ``api_key`` (default: ANABRANCH_API_KEY) every request but ``GET /api/health`` and
    the API docs must carry ``Authorization: Bearer <key>``, checked before any body byte is
    read; bodies are bounded in size and arrival time (ANABRANCH_SERVER_MAX_BODY_BYTES,
    ANABRANCH_SERVER_BODY_TIMEOUT_SECONDS; see server/limits.py). The database is migrated
    when the application starts, before it answers any request. ``ui_url`` (default:
    ANABRANCH_UI_URL) is the UI's address for the links notifications carry.
    """
    settings = get_settings()
    url = database_url or settings.resolved_database_url
    key = api_key if api_key is not None else settings.api_key

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Opening the client migrates the database (blocking I/O, hence the thread).
        app.state.client = await anyio.to_thread.run_sync(EmbeddedClient, url)
        app.state.feed = ChangeFeed()
        app.state.run_watcher = RunWatcher(app.state.client)
        async with anyio.create_task_group() as background:
            services.start(background, app.state.client, settings, ui_url)
            background.start_soon(app.state.run_watcher.run)
            try:
                yield
            finally:
                background.cancel_scope.cancel()
                app.state.feed.close()
        get_engine(url).dispose()

    app = FastAPI(
        title="anabranch",
        version=distribution_version("anabranch"),
        summary="Runs, states, logs and concurrency limits of anabranch flows.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        # Served by the UI from the package's own files (install_ui), never from a CDN.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    _with_bodies(app)
    app.state.database_url = url
    app.state.api_key = key or None
    app.state.client = None
    install_error_handlers(app)
    app.add_middleware(
        RequestLimits,
        api_key=app.state.api_key,
        open_paths=_open_paths(app),
        max_body_bytes=settings.server_max_body_bytes,
        body_timeout_seconds=settings.server_body_timeout_seconds,
    )
    # Health stays open: load balancers and `anabranch server start` probes carry no key.
    app.include_router(health.router, prefix=API_PREFIX)
    guarded = [Depends(require_api_key)]
    app.include_router(operations_router(), prefix=API_PREFIX, dependencies=guarded)
    install_ui(app)
    return app


def _open_paths(app: FastAPI) -> frozenset[str]:
    """What a GET may read without the API key: the health check and the API's docs."""
    documents = (app.openapi_url, DOCS_PATH)
    return frozenset([f"{API_PREFIX}/health", *(path for path in documents if path)])


def _with_bodies(app: FastAPI) -> None:
    """Build the OpenAPI document with the request bodies the routes validate themselves."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        openapi_bodies(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
