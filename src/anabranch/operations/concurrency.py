# mypy: disable-error-code="empty-body"
"""Named concurrency limits, and the slots, leases and places in line they are held by."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from anabranch.exceptions import (
    ConcurrencySlotError,
    InvalidConcurrencyLimit,
    UnknownConcurrencyLimit,
)
from anabranch.operations._declare import operation
from anabranch.schemas import ConcurrencyLimit, SlotGrant, SlotRequest
from anabranch.schemas.concurrency import FiniteFloat


def _all_take_leases(arguments: dict[str, Any]) -> bool:
    """Safe to resend: a lease carries its waiter's id, so a resent request finds it. A
    rate-limit request takes no lease, and resent after its answer was lost would count
    twice."""
    return all(request.mode == "lease" for request in arguments["requests"])



_LIMITS = "/concurrency_limits"
# Names may hold any character, "/" included: the rest of the path is the name.
_LIMIT = _LIMITS + "/{name:path}"


class ConcurrencyOperations:
    """Limits, and taking and giving back their slots."""

    @operation("POST", _LIMITS, implementation="concurrency:create_limit",
               errors=[InvalidConcurrencyLimit])
    def create_concurrency_limit(
        self,
        name: str,
        limit: int,
        *,
        active: bool = True,
        slot_decay_per_second: FiniteFloat | None = None,
    ) -> ConcurrencyLimit:
        """Create a named limit; if it exists, set its size (and decay, when given) only."""

    @operation("GET", _LIMIT, implementation="concurrency:read_limit",
               errors=[UnknownConcurrencyLimit])
    def read_concurrency_limit(self, name: str) -> ConcurrencyLimit:
        """The limit with its live holders; UnknownConcurrencyLimit (with the create hint)
        if there is none."""

    @operation("GET", _LIMITS, implementation="concurrency:read_limits")
    def read_concurrency_limits(self) -> list[ConcurrencyLimit]:
        """Every limit, by name, with the slots in use."""

    @operation("PATCH", _LIMIT, implementation="concurrency:update_limit",
               errors=[UnknownConcurrencyLimit, InvalidConcurrencyLimit])
    def update_concurrency_limit(
        self,
        name: str,
        *,
        limit: int | None = None,
        active: bool | None = None,
        slot_decay_per_second: FiniteFloat | None = None,
    ) -> ConcurrencyLimit:
        """Change a limit's size, activity or slot decay."""

    @operation("POST", _LIMIT + "/reset", implementation="concurrency:reset_limit",
               errors=[UnknownConcurrencyLimit])
    def reset_concurrency_limit(self, name: str) -> ConcurrencyLimit:
        """Free every slot of a limit (holders keep running)."""

    @operation("DELETE", _LIMIT, implementation="concurrency:delete_limit",
               errors=[UnknownConcurrencyLimit])
    def delete_concurrency_limit(self, name: str) -> None:
        """Delete a limit (holders keep running)."""

    @operation("POST", "/concurrency/acquire", implementation="concurrency:acquire",
               body="requests", resend=_all_take_leases,
               errors=[ConcurrencySlotError, UnknownConcurrencyLimit])
    def acquire_concurrency_slots(self, requests: Sequence[SlotRequest]) -> list[SlotGrant]:
        """Try each request in order, atomically each; one answer per request. A request
        resent after its answer was lost gets its lease again, not a second one."""

    @operation("POST", "/concurrency/leases/{lease_id}/release",
               implementation="concurrency:release")
    def release_concurrency_slots(self, lease_id: uuid.UUID) -> bool:
        """Free a lease's slots; False if it was already gone."""

    @operation("POST", "/concurrency/leases/renew", implementation="concurrency:renew",
               errors=[ConcurrencySlotError])
    def renew_concurrency_leases(
        self, lease_ids: Sequence[uuid.UUID], seconds: FiniteFloat
    ) -> list[uuid.UUID]:
        """Extend leases by ``seconds``; returns the ones that were lost."""

    @operation("DELETE", "/concurrency/waiters/{waiter_id}", implementation="concurrency:withdraw")
    def withdraw_concurrency_waiter(self, waiter_id: uuid.UUID) -> None:
        """Give up a waiter's place in line."""

    @operation("POST", "/concurrency/reap", implementation="concurrency:reap")
    def reap_concurrency_leases(self) -> int:
        """Delete expired leases and lapsed waiter tickets; returns how many leases went."""
