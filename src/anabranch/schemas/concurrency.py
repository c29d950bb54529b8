"""Concurrency limits, the holders of their slots, and requests for slots."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import FiniteFloat as FiniteFloat  # the wire's floats: NaN and infinity refused

from anabranch import _clock
from anabranch._ids import new_id

_LAZY = ConfigDict(defer_build=True)

# The largest count every database stores (PostgreSQL's INTEGER): the most slots a limit,
# or runs a pool, queue, deployment or worker limit, or the highest priority number, may be.
MAX_STORED_INT = 2_147_483_647

# A waiter that stops asking for this long is gone (its process died); its ticket lapses.
# Waiters renew their tickets well within it.
WAITER_TICKET_SECONDS = 10.0


class SlotHolder(BaseModel):
    """One lease holding slots of a limit: who, how many, since when, until when."""

    model_config = _LAZY

    lease_id: uuid.UUID
    holder: str
    run_id: uuid.UUID | None = None
    occupy: int
    since: datetime
    expires_at: datetime


class ConcurrencyLimit(BaseModel):
    """A named limit: at most ``limit`` slots in use at once. With ``slot_decay_per_second``
    it is also a rate limit: slots taken by ``rate_limit()`` free up at that rate."""

    model_config = _LAZY

    id: uuid.UUID = Field(default_factory=new_id)
    name: str
    limit: int
    active: bool = True
    slot_decay_per_second: float = 0.0
    active_slots: float = 0
    holders: list[SlotHolder] = Field(default_factory=list)
    waiting: int = 0
    created: datetime = Field(default_factory=_clock.now)
    updated: datetime = Field(default_factory=_clock.now)


class SlotRequest(BaseModel):
    """A request for ``occupy`` slots of every limit in ``names``, all or none.

    ``waiter_id`` and ``since`` identify the waiter across retries, so that slots go to the
    earliest waiter first; a granted lease takes the waiter's id, so a request resent after
    its answer was lost finds its lease instead of taking a second one.
    ``keep_place=True`` only writes or renews the waiter's ticket, without trying to grant:
    a waiter behind others of its own process keeps its place in line at little cost.
    ``strict=False`` ignores names that have no limit. ``mode="rate"`` takes slots that
    decay instead of a lease (``rate_limit()``).
    """

    model_config = _LAZY

    names: list[str]
    occupy: int = 1
    holder: str
    run_id: uuid.UUID | None = None
    waiter_id: uuid.UUID = Field(default_factory=new_id)
    since: datetime = Field(default_factory=_clock.now)
    strict: bool = True
    mode: Literal["lease", "rate"] = "lease"
    lease_seconds: float = 30.0
    keep_place: bool = False


class SlotGrant(BaseModel):
    """The answer to a SlotRequest: granted (with the lease, if any), waiting, or an error."""

    model_config = _LAZY

    granted: bool
    lease_id: uuid.UUID | None = None
    limited_by: list[str] = Field(default_factory=list)
    waiting_for: str | None = None
    error: str | None = None
