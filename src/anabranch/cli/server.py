"""`anabranch server start`: serve the API (uvicorn) over SQLite or PostgreSQL."""

from __future__ import annotations

import gc

import typer

from anabranch._redact import mask_passwords
from anabranch.cli import render
from anabranch.settings import get_settings

app = typer.Typer(help="Run the anabranch API server.", no_args_is_help=True)


@app.command()
def start(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(4200, min=1, max=65535, help="Port to listen on."),
    log_level: str = typer.Option("info", help="uvicorn's log level (warning is quieter)."),
) -> None:
    """Serve the API at http://HOST:PORT/api, migrating the database first.

    It stores into ANABRANCH_DATABASE_URL (default: the SQLite file in ANABRANCH_HOME).
    Clients use it when ANABRANCH_API_URL=http://HOST:PORT/api; with ANABRANCH_API_KEY set
    they must send it."""
    # Imported here, not at the top: the rest of the CLI (and `anabranch --help`) must not
    # pay for FastAPI and uvicorn, which only this command uses.
    import sqlalchemy as sa
    import uvicorn

    from anabranch.database import upgrade
    from anabranch.server import create_app
    from anabranch.server.ui import MISSING_ASSETS, assets_built

    settings = get_settings()
    url = settings.resolved_database_url
    # Never print a password: the URL as SQLAlchemy shows it (or as given, if it can not
    # parse it), with any password left in its query string masked too.
    shown = mask_passwords(url)
    try:
        shown = mask_passwords(sa.make_url(url).render_as_string(hide_password=True))
        upgrade(url)
    except (sa.exc.SQLAlchemyError, ValueError) as exc:
        problem = mask_passwords(str(exc))
        render.error(f"The database {shown} could not be opened or migrated: {problem}")
        raise typer.Exit(1) from exc
    site = f"http://{_url_host(host)}:{port}"
    api = f"{site}/api"
    print(f"anabranch server: listening on {api} (docs at {api}/docs)", flush=True)
    if assets_built():
        print(f"anabranch server: web UI at {site}/", flush=True)
    else:
        print(f"anabranch server: {MISSING_ASSETS}", flush=True)
    print(f"anabranch server: database {shown}", flush=True)
    if settings.api_key:
        print("anabranch server: API key required (ANABRANCH_API_KEY is set)", flush=True)
    if settings.secret_key is None:
        print(
            f"anabranch server: automations' secrets sealed with the key in "
            f"{settings.home_path / 'secret.key'}; replicas on one database need one key "
            "(ANABRANCH_SECRET_KEY)",
            flush=True,
        )
    print(f"anabranch server: clients connect with ANABRANCH_API_URL={api}", flush=True)
    api_app = create_app(url, ui_url=settings.ui_url or site)
    # Everything imported and built so far lives as long as the process: leave it out of
    # the collector's full passes, which would otherwise walk it while every record batch
    # allocates tens of thousands of objects (a quarter of validating one, measured).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        api_app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        # Longer than clients keep idle connections (httpx: 5 s), so a client never sends on
        # a connection the server is closing; a lost slot request can not be safely resent.
        timeout_keep_alive=75,
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host

