"""The client: one interface (``AnabranchClient``), and ``get_client()`` to get one."""

from __future__ import annotations

import threading

from anabranch.client.base import AnabranchClient
from anabranch.settings import current_store_key, get_settings

_clients: dict[str, AnabranchClient] = {}
_clients_lock = threading.Lock()


def get_client() -> AnabranchClient:
    """The client for the store the current settings point at, shared per store per process:
    an HTTPClient for the server at ANABRANCH_API_URL when that is set, else an
    EmbeddedClient on ANABRANCH_DATABASE_URL (default: SQLite in ANABRANCH_HOME).

    Works as ``with get_client() as client:``; leaving the block keeps the shared client open.
    """
    key = current_store_key()
    client = _clients.get(key)
    if client is not None:
        return client
    settings = get_settings()
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            # Imported on first use: the transports pull in httpx or SQLAlchemy, which
            # `import anabranch` and commands that never touch the store should not pay for.
            if settings.api_url:
                from anabranch.client.http import HTTPClient

                client = HTTPClient(settings.api_url, api_key=settings.api_key)
            else:
                from anabranch.client.embedded import EmbeddedClient

                client = EmbeddedClient(settings.resolved_database_url)
            _clients[key] = client
    return client


__all__ = ["AnabranchClient", "get_client"]
