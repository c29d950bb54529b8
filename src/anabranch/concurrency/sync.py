"""``concurrency()`` and ``rate_limit()`` for synchronous code."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from anabranch.concurrency._broker import get_broker
from anabranch.concurrency._requests import (
    as_names,
    new_request,
    wait_for_grant,
    warn_if_unlimited,
)


@contextlib.contextmanager
def concurrency(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = True,
) -> Iterator[None]:
    """Hold ``occupy`` slots of every named limit (all at once, or none) for the block.

    Waits in arrival order for free slots; ``timeout_seconds`` raises ConcurrencySlotTimeout
    holding nothing. With ``strict=True`` a name without a limit is an error saying how to
    create it; ``strict=False`` proceeds unlimited with a warning. The slots are freed on
    exit, exception, timeout and Ctrl-C; if this process dies they free up when their lease
    expires.
    """
    listed = as_names(names)
    request, logger = new_request(listed, occupy, strict)
    broker = get_broker()
    ticket = broker.request(request, logger=logger)
    grant = wait_for_grant(broker, ticket, timeout_seconds)
    if not strict:
        warn_if_unlimited(listed, grant, logger)
    try:
        yield
    finally:
        broker.release(grant.lease_id)


def rate_limit(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = True,
) -> None:
    """Take ``occupy`` slots of limits that have slot decay, waiting until there is room.

    The slots are not given back: they drain at the limit's ``slot_decay_per_second``, so
    calls go through at that rate at most.
    """
    listed = as_names(names)
    request, logger = new_request(listed, occupy, strict, mode="rate")
    broker = get_broker()
    ticket = broker.request(request, logger=logger)
    grant = wait_for_grant(broker, ticket, timeout_seconds)
    if not strict:
        warn_if_unlimited(listed, grant, logger)
