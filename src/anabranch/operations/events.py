# mypy: disable-error-code="empty-body"
"""Events: emitting them and reading the feed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from anabranch.operations._declare import operation
from anabranch.schemas.events import Event, EventPage


class EventOperations:
    """What happened: runs' state changes, workers, deployments, automations, user code."""

    @operation("POST", "/events", implementation="events:emit_events", body="events")
    def emit_events(self, events: list[Event]) -> None:
        """Store events; one whose id is stored already is skipped."""

    @operation("GET", "/events", implementation="events:read_events")
    def read_events(
        self,
        *,
        event_names: Sequence[str] | None = None,
        resource_ids: Sequence[str] | None = None,
        related_ids: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> EventPage:
        """Events whose name fits one of ``event_names`` and whose resource id fits one of
        ``resource_ids`` (``*`` is a wildcard), related to a resource fitting one of
        ``related_ids``, that occurred between ``since`` and ``until``; oldest first (newest
        first with ``newest_first``), at most ``limit`` (up to 1,000). To follow the feed,
        pass the page's ``next_after`` back as ``after``. With ``related_ids`` a page may
        hold fewer than ``limit`` although more match: reading stops after 20,000 events,
        and the next page goes on from there."""
