"""The client: one interface (``AnabranchClient``), and ``get_client()`` to get one."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from anabranch._per_store import current_store_key
from anabranch.client.base import AnabranchClient
from anabranch.settings import get_settings

if TYPE_CHECKING:
    from anabranch._settings import Settings

_clients: dict[str, AnabranchClient] = {}
_clients_lock = threading.Lock()


def get_client(*, sync_client: bool = False) -> AnabranchClient:
    """The client for the store the current settings point at, shared per store per process:
    an HTTPClient for the server at ANABRANCH_API_URL when that is set, else an
    EmbeddedClient on ANABRANCH_DATABASE_URL (default: SQLite in ANABRANCH_HOME).

    Its methods are plain calls (``get_client().read_flow_runs()``), and it works as
    ``with get_client() as client:`` (leaving the block keeps the shared client open). As in
    Prefect 3, ``async with get_client() as client:`` gives the async client for the same
    store, whose methods are awaited and which is closed when the block ends;
    ``sync_client=True`` says the plain client is wanted, which it always is outside
    ``async with``.
    """
    key = current_store_key()
    client = _clients.get(key)
    if client is not None:
        return client
    settings = get_settings()
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = new_client(settings)
    return client


def new_client(settings: Settings, *, retry_seconds: float | None = None) -> AnabranchClient:
    """A client of its own for the store ``settings`` point at; ``retry_seconds`` instead of
    ANABRANCH_CLIENT_RETRY_SECONDS (0: one attempt, for a quick look whether it answers)."""
    # Imported on first use: the transports pull in httpx or SQLAlchemy, which
    # `import anabranch` and commands that never touch the store should not pay for.
    if settings.api_url:
        from anabranch.client.http import HTTPClient

        return HTTPClient(settings.api_url, api_key=settings.api_key, retry_seconds=retry_seconds)
    from anabranch.client.embedded import EmbeddedClient

    return EmbeddedClient(settings.resolved_database_url, retry_seconds=retry_seconds)


__all__ = ["AnabranchClient", "get_client"]
