"""The events page: the feed newest first, filtered by name, resource and related resource
patterns from the URL, paged back in time, with newer events added on top while it is open.

The live part polls a fragment every two seconds for the events after the newest one
shown (the feed's positions only grow), rather than riding the runs' live stream: most
events (a worker going offline, an action's outcome, user code's own) change no run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from anabranch.schemas.events import Event, Resource
from anabranch.server.ui.render import page
from anabranch.server.ui.runs import store

PAGE_SIZE = 50
# The first line of a message, at most this long, is shown in the list.
MESSAGE_CHARS = 300
# Resources with a page of their own, by the prefix of their id (followed by a uuid); an
# automation's page is found by its name.
PAGES = {
    "anabranch.flow-run.": "/runs/",
    "anabranch.task-run.": "/task-runs/",
    "anabranch.deployment.": "/deployments/",
}
AUTOMATION = "anabranch.automation."
RUN_ROLES = ("flow-run", "parent-flow-run")
BAD_ENDINGS = (".Failed", ".Crashed", ".failed", ".offline")
GOOD_ENDINGS = (".Completed", ".executed", ".online")

router = APIRouter()


@dataclass(frozen=True)
class ShownEvent:
    """An event as a row: where its resource's page is, the runs it concerns, the line
    that says what went wrong, and whether the name reads as good or bad news."""

    event: Event
    link: str | None
    runs: list[tuple[str, str, str]]  # (role, name, page)
    message: str | None
    tone: str


@router.get("/events", include_in_schema=False)
def events(
    request: Request,
    event: str = "",
    resource: str = "",
    related: str = "",
    after: int | None = Query(default=None, ge=0),
) -> Response:
    """A page of the feed, newest first; ``after`` (the previous page's ``next_after``)
    pages back in time, and only the first page follows newer events."""
    filters = _filters(event, resource, related)
    found = store(request).read_events(**filters, after=after, limit=PAGE_SIZE,
                                       newest_first=True)
    return page(
        request, "events.html", section="events", rows=[show(e) for e in found.events],
        older=found.next_after if len(found.events) == PAGE_SIZE else None,
        following=after is None, poll_url=_poll_url(found.end, event, resource, related),
        filters={"event": event, "resource": resource, "related": related},
    )


@router.get("/events/newer", include_in_schema=False)
def newer(
    request: Request, after: int = Query(ge=0), event: str = "", resource: str = "",
    related: str = "",
) -> Response:
    """The events after position ``after``, newest on top, and the poller that asks for
    the ones after them."""
    found = store(request).read_events(**_filters(event, resource, related), after=after,
                                       limit=PAGE_SIZE)
    newest = found.next_after if found.next_after is not None else after
    return page(request, "events_newer.html", rows=[show(e) for e in reversed(found.events)],
                poll_url=_poll_url(newest, event, resource, related))


def show(event: Event) -> ShownEvent:
    runs = [(str(r.role), r.name or r.id, link) for r in event.related
            if r.role in RUN_ROLES and (link := _page_of(r))]
    message = event.resource.get("anabranch.state-message") or event.payload.get("error")
    lines = str(message or "").strip().splitlines()
    return ShownEvent(
        event=event,
        link=_page_of(event.resource),
        runs=runs,
        message=lines[0][:MESSAGE_CHARS] if lines else None,
        tone="bad" if event.event.endswith(BAD_ENDINGS)
        else "good" if event.event.endswith(GOOD_ENDINGS) else "",
    )


def _page_of(resource: Resource) -> str | None:
    """The page of a run, deployment or automation; None for anything else (or an id that
    is not one: events may come from user code)."""
    if resource.id.startswith(AUTOMATION) and resource.name:
        return "/automations/" + quote(resource.name)
    for prefix, path in PAGES.items():
        if resource.id.startswith(prefix):
            try:
                return path + str(uuid.UUID(resource.id.removeprefix(prefix)))
            except ValueError:
                return None
    return None


def _poll_url(after: int, event: str, resource: str, related: str) -> str:
    """Where the open first page asks for the events after position ``after``."""
    patterns = {"event": event, "resource": resource, "related": related}
    return "/events/newer?" + urlencode(
        {"after": after, **{key: value for key, value in patterns.items() if value}}
    )


def _filters(event: str, resource: str, related: str) -> dict[str, Any]:
    return {
        "event_names": [event.strip()] if event.strip() else None,
        "resource_ids": [resource.strip()] if resource.strip() else None,
        "related_ids": [related.strip()] if related.strip() else None,
    }
