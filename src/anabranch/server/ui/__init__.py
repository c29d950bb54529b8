"""The web UI: server-rendered pages at ``/`` over the same operations every client uses,
with htmx for partial updates and Server-Sent Events for live changes (live.py).

The front-end libraries are not in the repository: ``make ui-assets`` (run by ``make demo``,
``make test`` and the wheel build) installs them from the npm lockfile into
``static/vendor``. Without them the server still serves the API, and ``/`` says how to
build the pages.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from anabranch.server.ui import (
    automations,
    catalog,
    events,
    infrastructure,
    live,
    login,
    runs,
)
from anabranch.server.ui.live import RunWatcher
from anabranch.server.ui.render import HERE, assets_built

MISSING_ASSETS = (
    "The web UI's front-end files are not built: run `make ui-assets` in the anabranch "
    "checkout (it needs npm), then restart the server. The API is served under /api."
)

DOCS_PATH = "/api/docs"

__all__ = ["DOCS_PATH", "MISSING_ASSETS", "RunWatcher", "assets_built", "install_ui"]


def install_ui(app: FastAPI) -> None:
    """Serve the pages, or, when the assets were not built, one page saying how."""
    if not assets_built():
        @app.get("/", include_in_schema=False)
        def not_built() -> HTMLResponse:
            return HTMLResponse(f"<!doctype html><title>anabranch</title><p>{MISSING_ASSETS}",
                                status_code=503)
        return
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (login, live, runs, catalog, infrastructure, events, automations):
        app.include_router(module.router)

    @app.get(DOCS_PATH, include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "", title="anabranch API",
            swagger_js_url="/static/vendor/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui.css",
            swagger_favicon_url="/static/icon.svg",
        )
