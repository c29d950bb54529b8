"""The client: one interface (``AnabranchClient``), and ``get_client()`` to get one."""

from __future__ import annotations

import threading

from anabranch.client.base import AnabranchClient
from anabranch.exceptions import AnabranchError
from anabranch.settings import current_store_key, get_settings

_clients: dict[str, AnabranchClient] = {}
_clients_lock = threading.Lock()


def get_client() -> AnabranchClient:
    """The client for the store the current settings point at, shared per store per process.

    Works as ``with get_client() as client:``; leaving the block keeps the shared client open.
    """
    key = current_store_key()
    client = _clients.get(key)
    if client is not None:
        return client
    settings = get_settings()
    if settings.api_url:
        raise AnabranchError(
            f"ANABRANCH_API_URL is set ({settings.api_url}), but the HTTP client arrives with "
            "`anabranch server`; unset ANABRANCH_API_URL to use the local store."
        )
    url = settings.resolved_database_url
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            # Imported on first use: the embedded transport pulls in SQLAlchemy, which
            # `import anabranch` and commands that never touch the store should not pay for.
            from anabranch.client.embedded import EmbeddedClient

            client = _clients[url] = EmbeddedClient(url)
    return client


__all__ = ["AnabranchClient", "get_client"]
