"""Concurrency limits, the holders of their slots, and requests for slots."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from anabranch import _clock
from anabranch._ids import new_id

_LAZY = ConfigDict(defer_build=True)


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
    earliest waiter first. ``strict=False`` ignores names that have no limit. ``mode="rate"``
    takes slots that decay instead of a lease (``rate_limit()``).
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


class SlotGrant(BaseModel):
    """The answer to a SlotRequest: granted (with the lease, if any), waiting, or an error."""

    model_config = _LAZY

    granted: bool
    lease_id: uuid.UUID | None = None
    limited_by: list[str] = Field(default_factory=list)
    waiting_for: str | None = None
    error: str | None = None
