"""Named concurrency limits, and the slots, leases and waiters that enforce them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, Field, FiniteFloat

from anabranch.schemas import ConcurrencyLimit, SlotGrant, SlotRequest
from anabranch.schemas.concurrency import MAX_STORED_INT
from anabranch.server.dependencies import Store

router = APIRouter(tags=["concurrency"])

_404: dict[int | str, dict[str, Any]] = {
    404: {"description": "No concurrency limit with that name."}
}
# Names may hold any character; clients percent-encode them (a "/" included).
LimitName = Annotated[str, Path(description="The limit's name, percent-encoded.")]


class LimitCreate(BaseModel):
    name: str = Field(min_length=1)
    limit: int = Field(le=MAX_STORED_INT)
    active: bool = True
    slot_decay_per_second: FiniteFloat | None = None


class LimitUpdate(BaseModel):
    limit: int | None = Field(default=None, le=MAX_STORED_INT)
    active: bool | None = None
    slot_decay_per_second: FiniteFloat | None = None


class Released(BaseModel):
    released: bool


class LeaseRenewal(BaseModel):
    lease_ids: list[uuid.UUID]
    seconds: FiniteFloat = Field(ge=0, le=86_400 * 365)


class LostLeases(BaseModel):
    lost: list[uuid.UUID]


class Reaped(BaseModel):
    reaped: int


@router.post("/concurrency_limits")
def create_limit(body: LimitCreate, store: Store) -> ConcurrencyLimit:
    """Create a limit; if it exists, set its size (and decay, when given) only."""
    return store.create_concurrency_limit(
        body.name, body.limit, active=body.active,
        slot_decay_per_second=body.slot_decay_per_second,
    )


@router.get("/concurrency_limits")
def read_limits(store: Store) -> list[ConcurrencyLimit]:
    """Every limit, by name, with its slots in use."""
    return store.read_concurrency_limits()


@router.get("/concurrency_limits/{name:path}", responses=_404)
def read_limit(name: LimitName, store: Store) -> ConcurrencyLimit:
    """One limit with its holders and the number of waiters."""
    return store.read_concurrency_limit(name)


@router.patch("/concurrency_limits/{name:path}", responses=_404)
def update_limit(name: LimitName, body: LimitUpdate, store: Store) -> ConcurrencyLimit:
    return store.update_concurrency_limit(
        name, limit=body.limit, active=body.active,
        slot_decay_per_second=body.slot_decay_per_second,
    )


@router.post("/concurrency_limits/{name:path}/reset", responses=_404)
def reset_limit(name: LimitName, store: Store) -> ConcurrencyLimit:
    """Free every slot of the limit; its holders keep running."""
    return store.reset_concurrency_limit(name)


@router.delete(
    "/concurrency_limits/{name:path}", status_code=status.HTTP_204_NO_CONTENT, responses=_404
)
def delete_limit(name: LimitName, store: Store) -> None:
    store.delete_concurrency_limit(name)


@router.post("/concurrency/acquire")
def acquire(requests: list[SlotRequest], store: Store) -> list[SlotGrant]:
    """Try each request in order, each all-or-nothing; one answer per request."""
    for index, request in enumerate(requests):
        if request.since.tzinfo is None:
            # Waiters are ordered by `since`; a naive time can not be compared with others.
            raise ValueError(
                f"requests[{index}].since must carry a time zone, got {request.since.isoformat()}."
            )
    return store.acquire_concurrency_slots(requests)


@router.post("/concurrency/leases/{lease_id}/release")
def release(lease_id: uuid.UUID, store: Store) -> Released:
    """Free a lease's slots; ``released`` is false if it was already gone."""
    return Released(released=store.release_concurrency_slots(lease_id))


@router.post("/concurrency/leases/renew")
def renew(body: LeaseRenewal, store: Store) -> LostLeases:
    """Extend leases by ``seconds``; ``lost`` lists the ones no longer held."""
    return LostLeases(lost=store.renew_concurrency_leases(body.lease_ids, body.seconds))


@router.delete("/concurrency/waiters/{waiter_id}", status_code=status.HTTP_204_NO_CONTENT)
def withdraw(waiter_id: uuid.UUID, store: Store) -> None:
    """Give up a waiter's place in line."""
    store.withdraw_concurrency_waiter(waiter_id)


@router.post("/concurrency/reap")
def reap(store: Store) -> Reaped:
    """Delete expired leases and lapsed waiter tickets now (the server also does it itself)."""
    return Reaped(reaped=store.reap_concurrency_leases())
