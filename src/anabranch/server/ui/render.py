"""The templates and the filters they share: states as words and colours, times as
machine-readable instants the browser shows in the viewer's zone, durations, counts."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from anabranch.schemas.states import StateType
from anabranch.schemas.summaries import StateCounts

HERE = Path(__file__).parent
VENDOR = HERE / "static" / "vendor"
VENDOR_FILES = ("htmx.min.js", "sse.js")

# The order states are listed in a summary: what needs a look first.
STATE_ORDER = (
    StateType.FAILED,
    StateType.CRASHED,
    StateType.CANCELLING,
    StateType.CANCELLED,
    StateType.RUNNING,
    StateType.PAUSED,
    StateType.PENDING,
    StateType.SCHEDULED,
    StateType.COMPLETED,
)

templates = Jinja2Templates(directory=HERE / "templates")


def assets_built() -> bool:
    """Whether the front-end libraries were put into the package (``make ui-assets``)."""
    return all((VENDOR / name).is_file() for name in VENDOR_FILES)


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """``template`` rendered with ``context`` (a whole page, or a part htmx swaps in)."""
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def state_class(state_type: StateType | str | None) -> str:
    return "state-" + (StateType(state_type).value.lower() if state_type else "pending")


def state_word(state_type: StateType | str | None) -> str:
    return StateType(state_type).value.lower() if state_type else "pending"


def counts_in_order(counts: StateCounts) -> list[tuple[StateType, int]]:
    return [(state, counts.counts[state]) for state in STATE_ORDER if counts.counts.get(state)]


def iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()


def duration(start: datetime | None, end: datetime | None, now: datetime | None = None) -> str:
    """``1h 02m``, ``3m 04s``, ``5.2s``, ``12ms``; empty when the run has not started."""
    if start is None:
        return ""
    end = end or now
    if end is None:
        return ""
    seconds = max((end - start) / timedelta(seconds=1), 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def with_query(request: Request, **changes: Any) -> str:
    """This page's URL with some query parameters changed (None removes one): filters,
    tabs and pages are all in the URL, so every view is a link."""
    pairs = [(key, value) for key, value in request.query_params.multi_items()
             if key not in changes]
    for key, value in changes.items():
        if value is None or value == "":
            continue
        if isinstance(value, (list, tuple)):
            pairs += [(key, str(item)) for item in value]
        else:
            pairs.append((key, str(value)))
    encoded = urlencode(pairs)
    return request.url.path + ("?" + encoded if encoded else "")


templates.env.filters.update(
    state_class=state_class,
    state_word=state_word,
    iso=iso,
    counts_in_order=counts_in_order,
)
templates.env.globals.update(duration=duration, with_query=with_query, StateType=StateType)


async def form_fields(request: Request) -> dict[str, list[str]]:
    """An urlencoded form's fields (what htmx and plain forms send), each with its values; a
    dependency, read on the event loop, so the page that takes it can be a plain function
    that the server runs in a thread (its store calls block)."""
    return parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
