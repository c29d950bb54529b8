"""Building slot requests for the current code, and waiting for them with a timeout."""

from __future__ import annotations

import os
import threading
import warnings
from typing import Any, Literal

from anabranch.concurrency._broker import SlotBroker, SlotTicket
from anabranch.context import FlowRunContext, TaskRunContext
from anabranch.exceptions import ConcurrencySlotTimeout
from anabranch.logging import get_run_logger
from anabranch.schemas import SlotGrant, SlotRequest


def as_names(names: str | list[str]) -> list[str]:
    listed = [names] if isinstance(names, str) else list(names)
    if not listed or not all(isinstance(n, str) and n for n in listed):
        raise ValueError(f"concurrency names must be a name or a list of names, got {names!r}.")
    return listed


def describe_caller() -> tuple[str, Any, Any]:
    """(holder text, run id, run logger) for whoever is asking: a task run, a flow run, or a
    plain thread of a process."""
    ctx = TaskRunContext.get() or FlowRunContext.get()
    if isinstance(ctx, TaskRunContext):
        return f"task run {ctx.task_run.name!r}", ctx.task_run.id, get_run_logger()
    if isinstance(ctx, FlowRunContext):
        return f"flow run {ctx.flow_run.name!r}", ctx.flow_run.id, get_run_logger()
    return f"pid {os.getpid()} thread {threading.current_thread().name}", None, None


def new_request(
    names: list[str], occupy: int, strict: bool, mode: Literal["lease", "rate"] = "lease"
) -> tuple[SlotRequest, Any]:
    if occupy < 1:
        raise ValueError(f"occupy must be at least 1, got {occupy}.")
    holder, run_id, logger = describe_caller()
    request = SlotRequest(
        names=names, occupy=occupy, holder=holder, run_id=run_id, strict=strict, mode=mode
    )
    return request, logger


def wait_for_grant(broker: SlotBroker, ticket: SlotTicket, timeout: float | None) -> SlotGrant:
    """Wait for the ticket; an interrupt (Ctrl-C) while waiting gives up the place in line."""
    try:
        grant = ticket.wait(timeout)
    except BaseException:
        late = broker.cancel(ticket)
        if late is not None:
            broker.release(late.lease_id)
        raise
    return settle(broker, ticket, grant, timeout)


def settle(
    broker: SlotBroker, ticket: SlotTicket, grant: SlotGrant | None, timeout: float | None
) -> SlotGrant:
    """The grant, or (having given up the place in line) ConcurrencySlotTimeout."""
    if grant is not None:
        return grant
    late = broker.cancel(ticket)
    if late is not None:
        return late
    waiting = ticket.waiting_for or "free slots"
    raise ConcurrencySlotTimeout(
        f"Could not get {ticket.request.occupy} slot(s) of {ticket.request.names} within "
        f"{timeout:g} s; still waiting for {waiting}. Nothing is held."
    )


def warn_if_unlimited(names: list[str], grant: SlotGrant, logger: Any) -> None:
    """strict=False: say which names limit nothing, so a typo does not pass silently."""
    unlimited = [n for n in names if n not in grant.limited_by]
    if not unlimited:
        return
    message = (
        f"No active concurrency limit named {unlimited}; proceeding without limiting them. "
        f"Create one with `anabranch concurrency-limit create {unlimited[0]} LIMIT`."
    )
    if logger is not None:
        logger.warning(message)
    else:
        warnings.warn(message, stacklevel=4)
