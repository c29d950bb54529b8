"""The admission rule: which slot requests get their slots now, over plain values.

``admit`` sees the limits, the slots in use, the waiters' tickets and the requests, and says
what each request is answered and what to write (leases, tickets, decaying slots); it reads
and writes nothing itself, so the rule is tested without a database (``acquisition`` does
the reading and writing around it).

Slots go out in arrival order: a request does not take slots while an earlier live waiter
wants any of the same limits, unless another of that waiter's limits is full for it (then
nothing taken meanwhile delays it). Without that exception, a holder of ``a`` asking for a
free ``b`` would queue behind a waiter for ``a`` and ``b``, which waits for the holder to
release ``a``: a deadlock.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from anabranch.exceptions import UnknownConcurrencyLimit
from anabranch.schemas import SlotGrant, SlotRequest
from anabranch.schemas.concurrency import WAITER_TICKET_SECONDS


class Limit(NamedTuple):
    """A concurrency limit as stored (the columns of ``concurrency_limit`` admission uses)."""

    id: uuid.UUID
    name: str
    limit: int
    active: bool
    slot_decay_per_second: float
    decaying_slots: float
    decayed_at: datetime | None


class Ticket(NamedTuple):
    """A waiter's place in line on one limit (a row of ``concurrency_waiter``)."""

    id: uuid.UUID
    limit_id: uuid.UUID
    since: datetime
    expires_at: datetime
    occupy: int


# What an admission writes, in the order it decided it.


class KeepTicket(NamedTuple):
    """Insert the ticket; a lapsed one of the same waiter and limit is its place again."""

    ticket: Ticket


class RefreshTicket(NamedTuple):
    """Extend a live ticket that is half way to lapsing."""

    waiter_id: uuid.UUID
    limit_id: uuid.UUID
    expires_at: datetime


class Withdraw(NamedTuple):
    """Delete every ticket of the waiter: it got its slots."""

    waiter_id: uuid.UUID


class GrantLease(NamedTuple):
    """A lease (its id is the request's waiter id) holding ``occupy`` slots of each limit."""

    request: SlotRequest
    limit_ids: list[uuid.UUID]
    expires_at: datetime


class Decay(NamedTuple):
    """A rate-limited grant: the limit's decaying slots become ``decaying_slots`` as of now."""

    limit_id: uuid.UUID
    decaying_slots: float


Write = KeepTicket | RefreshTicket | Withdraw | GrantLease | Decay


class Admission(NamedTuple):
    """One grant per request, in the requests' order, and the writes that make them so."""

    grants: list[SlotGrant]
    writes: list[Write]


def unknown_limit(name: str) -> UnknownConcurrencyLimit:
    return UnknownConcurrencyLimit(
        f"No concurrency limit named {name!r}; create it with "
        f"`anabranch concurrency-limit create {name} LIMIT`."
    )


def check_requests(requests: Sequence[SlotRequest]) -> None:
    """ValueError for a request whose ``since`` has no time zone: waiters are ordered by
    ``since``, and a naive time can not be compared with the others."""
    for index, request in enumerate(requests):
        if request.since.utcoffset() is None:
            raise ValueError(
                f"requests[{index}].since must carry a time zone, got "
                f"{request.since.isoformat()}."
            )


def decayed(limit: Limit, now: datetime) -> float:
    """Rate-limit slots still occupied: they drain at ``slot_decay_per_second``."""
    if not limit.decaying_slots or limit.decayed_at is None:
        return 0.0
    elapsed = (now - limit.decayed_at).total_seconds()
    return max(0.0, limit.decaying_slots - elapsed * limit.slot_decay_per_second)


def admit(
    requests: Sequence[SlotRequest],
    limits: Iterable[Limit],
    used: Mapping[uuid.UUID, float],
    waiters: Iterable[Ticket],
    granted: Mapping[uuid.UUID, SlotGrant],
    now: datetime,
) -> Admission:
    """Answer each request in order, as if alone after the ones before it.

    ``limits``: those the requests name that exist, and the other limits of the waiters.
    ``used``: slots held by live leases, per limit id (none when absent). ``waiters``: the
    live tickets of the earliest waiters on the requests' limits and of the requests' own
    waiter ids. ``granted``: the answers of requests granted a lease before (by waiter
    id), given again. A ``keep_place`` request only keeps its tickets.
    """
    line = _Line(limits, used, waiters, now)
    grants = []
    for request in requests:
        if request.waiter_id in granted:
            grants.append(granted[request.waiter_id])
        elif request.keep_place:
            active = line.active(request.names)
            line.keep_waiting(request, active)
            grants.append(SlotGrant(granted=False, limited_by=[limit.name for limit in active]))
        else:
            grants.append(_try(request, line))
    return Admission(grants, line.writes)


class _Line:
    """The limits and waiters of one admission, as grants and tickets change them."""

    def __init__(
        self,
        limits: Iterable[Limit],
        used: Mapping[uuid.UUID, float],
        waiters: Iterable[Ticket],
        now: datetime,
    ) -> None:
        self.now = now
        self.writes: list[Write] = []
        self.used = dict(used)
        self.decaying: dict[uuid.UUID, float] = {}
        self._by_id = {limit.id: limit for limit in limits}
        self.by_name = {limit.name: limit for limit in self._by_id.values()}
        self._waiters = list(waiters)
        self._tickets: dict[uuid.UUID, list[Ticket]] = {}
        for ticket in self._waiters:
            self._tickets.setdefault(ticket.id, []).append(ticket)

    def active(self, names: Iterable[str]) -> list[Limit]:
        """The active limits among ``names``, in their order (missing names left out)."""
        by_name = self.by_name
        return [by_name[n] for n in names if n in by_name and by_name[n].active]

    def in_use(self, limit: Limit) -> float:
        return self.used.get(limit.id, 0) + decayed(limit, self.now)

    def ahead_of(self, request: SlotRequest, limit_ids: set[uuid.UUID]) -> list[Ticket]:
        """The earlier waiters' tickets that hold ``request`` back."""
        return [
            w for w in self._waiters
            if w.limit_id in limit_ids and w.id != request.waiter_id
            and w.since < request.since and not self._stuck_elsewhere(w)
        ]

    def _stuck_elsewhere(self, ticket: Ticket) -> bool:
        for other in self._tickets.get(ticket.id, ()):
            limit = self._by_id.get(other.limit_id)
            if other.limit_id == ticket.limit_id or limit is None or not limit.active:
                continue
            if self.in_use(limit) + other.occupy > limit.limit:
                return True
        return False

    def keep_waiting(self, request: SlotRequest, limits: Iterable[Limit]) -> None:
        """Leave (or refresh) the request's tickets, so later requests queue behind it."""
        expires = self.now + timedelta(seconds=WAITER_TICKET_SECONDS)
        fresh_until = self.now + timedelta(seconds=WAITER_TICKET_SECONDS / 2)
        mine = {t.limit_id: t.expires_at for t in self._tickets.get(request.waiter_id, ())}
        for limit in limits:
            if limit.id in mine:
                if mine[limit.id] <= fresh_until:
                    self.writes.append(RefreshTicket(request.waiter_id, limit.id, expires))
                continue
            ticket = Ticket(request.waiter_id, limit.id, request.since, expires, request.occupy)
            self.writes.append(KeepTicket(ticket))
            self._waiters.append(ticket)
            self._tickets.setdefault(ticket.id, []).append(ticket)

    def leave(self, waiter_id: uuid.UUID) -> None:
        """The waiter got its slots: its tickets go, if it had any."""
        if self._tickets.pop(waiter_id, None) is None:
            return
        self._waiters = [w for w in self._waiters if w.id != waiter_id]
        self.writes.append(Withdraw(waiter_id))

    def take(self, limits: Iterable[Limit], occupy: int) -> None:
        for limit in limits:
            self.used[limit.id] = self.used.get(limit.id, 0) + occupy

    def decay(self, limits: Iterable[Limit], occupy: int) -> None:
        """Rate-limit slots taken: each limit's decaying slots grow by ``occupy``, counted
        from what earlier grants of this same batch left (the last write holds them all)."""
        for limit in limits:
            total = self.decaying.get(limit.id, decayed(limit, self.now)) + occupy
            self.decaying[limit.id] = total
            self.writes.append(Decay(limit.id, total))


def _try(request: SlotRequest, line: _Line) -> SlotGrant:
    missing = [name for name in request.names if name not in line.by_name]
    if missing and request.strict:
        return SlotGrant(granted=False, error=str(unknown_limit(missing[0])))
    limits = line.active(request.names)
    if not limits:
        return SlotGrant(granted=True)
    names = [limit.name for limit in limits]
    for limit in limits:
        if request.occupy > limit.limit:
            return SlotGrant(
                granted=False,
                error=f"{request.occupy} slots of concurrency limit {limit.name!r} can never "
                f"be granted: its limit is {limit.limit}. Occupy fewer or raise the limit.",
            )
        if request.mode == "rate" and limit.slot_decay_per_second <= 0:
            return SlotGrant(
                granted=False,
                error=f"rate_limit() needs slot decay, and concurrency limit {limit.name!r} "
                f"has none; set it with `anabranch concurrency-limit update {limit.name} "
                "--slot-decay-per-second RATE`.",
            )
    ahead = line.ahead_of(request, {limit.id for limit in limits})
    full = [limit for limit in limits if line.in_use(limit) + request.occupy > limit.limit]
    if ahead or full:
        line.keep_waiting(request, limits)
        blocker = full[0] if full else next(x for x in limits if x.id == ahead[0].limit_id)
        return SlotGrant(
            granted=False,
            limited_by=names,
            waiting_for=f"concurrency limit {blocker.name!r} "
            f"({line.in_use(blocker):g}/{blocker.limit} slots in use"
            + (f", {len({w.id for w in ahead})} earlier waiter(s)" if ahead else "")
            + ")",
        )
    line.leave(request.waiter_id)
    if request.mode == "rate":
        line.decay(limits, request.occupy)
        line.take(limits, request.occupy)
        return SlotGrant(granted=True, limited_by=names)
    expires_at = line.now + timedelta(seconds=request.lease_seconds)
    line.writes.append(GrantLease(request, [limit.id for limit in limits], expires_at))
    line.take(limits, request.occupy)
    return SlotGrant(granted=True, lease_id=request.waiter_id, limited_by=names)
