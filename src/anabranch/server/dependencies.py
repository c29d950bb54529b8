"""What a route may ask for: the store (an EmbeddedClient over the app's database)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from anabranch.client.embedded import EmbeddedClient
from anabranch.server.waiting import ChangeFeed


def get_store(request: Request) -> EmbeddedClient:
    """The app's client, opened (and the database migrated) when the app started."""
    client: EmbeddedClient | None = request.app.state.client
    if client is None:
        raise RuntimeError("The anabranch API is used before its lifespan started it.")
    return client


Store = Annotated[EmbeddedClient, Depends(get_store)]


def get_feed(request: Request) -> ChangeFeed:
    """The app's change feed, which long polls wait on."""
    feed: ChangeFeed = request.app.state.feed
    return feed


Feed = Annotated[ChangeFeed, Depends(get_feed)]
