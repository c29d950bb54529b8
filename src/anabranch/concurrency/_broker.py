"""Getting slots: one attempt in the caller's thread, then a waiting room.

Every waiting request of this process sits in one queue, in arrival order, served by one
thread; a release in this process wakes it at once, otherwise it polls with a short
back-off (other processes' releases). Requests for the same limits form a group, and a
group moves in order: an attempt asks only for the first few of each group (one more for
every release since the last attempt, twice as many while all asked for are granted), and
the rest keep their places in line with a cheap renewal of their tickets every few seconds.
So the work of waiting grows with the waiters that can move, not with all of them.

A request the store does not answer within the client's retry budget fails its waiter
with the store's error: nothing waits forever on a store that is gone.
"""

from __future__ import annotations

import atexit
import bisect
import contextlib
import sys
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from anabranch import _clock
from anabranch._per_store import PerStore
from anabranch.client import get_client
from anabranch.concurrency._leases import HeldLease, LeaseKeeper
from anabranch.exceptions import (
    ConcurrencySlotError,
    StoreUnavailable,
    UnknownConcurrencyLimit,
)
from anabranch.schemas import SlotGrant, SlotRequest
from anabranch.schemas.concurrency import WAITER_TICKET_SECONDS

if TYPE_CHECKING:
    from anabranch._settings import Settings

_MIN_POLL = 0.002
_MAX_POLL = 0.015
_NAMES_TTL = 1.0
_ATTEMPT_SETTLE_SECONDS = 5.0
# Tickets of waiters not asked for are renewed this often: well within their lapse time.
_RENEW_PLACES_SECONDS = WAITER_TICKET_SECONDS / 4


class SlotTicket:
    """One request's place in the waiting room; ``wait()`` until its slots are granted."""

    def __init__(self, request: SlotRequest, on_done: Callable[[SlotTicket], None] | None):
        self.request = request
        self.on_done = on_done
        self.grant: SlotGrant | None = None
        self.error: Exception | None = None
        self.waiting_for: str | None = None
        self.logger: Any = None
        # Requests for the same slots queue behind each other in this process.
        self.group = (tuple(request.names), request.occupy, request.mode)
        # Whether the store has this request's ticket (its first attempt wrote it).
        self.placed = True
        self._done = threading.Event()

    def resolve(self, grant: SlotGrant | None, error: Exception | None = None) -> None:
        """Settle the ticket: granted, failed, or (both None) abandoned by its caller."""
        self.grant, self.error = grant, error
        self._done.set()
        if self.on_done is not None:
            self.on_done(self)

    def wait(self, timeout: float | None = None) -> SlotGrant | None:
        """The grant, or None if ``timeout`` ran out first; raises a request's error."""
        if not self._done.wait(timeout):
            return None
        if self.error is not None:
            raise self.error
        return self.grant


class SlotBroker:
    """Acquires and releases slots for this process in one store."""

    def __init__(self, client: Callable[[], Any], lease_seconds: float) -> None:
        self._client = client
        self.keeper = LeaseKeeper(client, lease_seconds)
        self.lease_seconds = lease_seconds
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._idle = threading.Condition(lock)
        self._queue: list[SlotTicket] = []
        self._woken = False
        self._attempt_in_flight = False
        self._thread: threading.Thread | None = None
        # Per group, how many of its first requests the next attempt asks for, and the
        # releases here since the last attempt (each may let one more request through).
        self._windows: dict[tuple[Any, ...], int] = {}
        self._released = 0
        self._places_renewed_at = _clock.monotonic()
        self._stats = {"attempts": 0, "requests_tried": 0, "places_kept": 0}
        self._limit_names: frozenset[str] = frozenset()
        self._names_read_at = float("-inf")
        self._ensured: dict[str, int] = {}

    def request(
        self,
        request: SlotRequest,
        on_done: Callable[[SlotTicket], None] | None = None,
        logger: Any = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> SlotTicket:
        """Ask for slots: answered now if they are free and nobody here waits for them,
        else queued; ``on_done`` runs once the ticket is settled (in the broker's thread when
        it was queued). ``on_wait(reason)`` runs in the caller's thread before it queues."""
        request.lease_seconds = self.lease_seconds
        ticket = SlotTicket(request, on_done)
        ticket.logger = logger
        with self._cond:
            ahead = next((t for t in self._queue if t.group == ticket.group), None)
        if ahead is None:
            # A first attempt: a denied one leaves the request's ticket in the store, which
            # is what keeps arrival order across this process and every other.
            try:
                (grant,) = self._client().acquire_concurrency_slots([request])
            except Exception as exc:
                ticket.resolve(None, _unreachable(request, exc))
                return ticket
            if grant.granted or grant.error:
                self._settle(ticket, grant)
                return ticket
            ticket.waiting_for = grant.waiting_for
        else:
            # Behind a request of its own group here: it can not move first, so no attempt;
            # the waiting room writes its ticket on its next pass.
            ticket.waiting_for = ahead.waiting_for
            ticket.placed = False
        if on_wait is not None:
            on_wait(ticket.waiting_for or f"concurrency limits {request.names}")
        with self._cond:
            # In the store's order (arrival time), which a first attempt still under way in
            # another thread may not have kept: the head of a group must be its earliest.
            bisect.insort(self._queue, ticket, key=lambda t: t.request.since)
            self._woken = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="anabranch-slot-broker", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return ticket

    def statistics(self) -> dict[str, int]:
        """What waiting has cost so far: the waiting room's attempts, the requests they
        tried and the places in line they only kept, and how many wait now."""
        with self._cond:
            return {**self._stats, "waiting": len(self._queue)}

    def limit_names(self) -> frozenset[str]:
        """Names of the existing limits, refreshed at most once a second: tags are checked
        against it so a tagged run pays a round trip only when a tag names a limit."""
        now = _clock.monotonic()
        if now - self._names_read_at > _NAMES_TTL:
            limits = self._client().read_concurrency_limits()
            self._limit_names = frozenset(limit.name for limit in limits)
            self._names_read_at = now
        return self._limit_names

    def ensure_limit(self, name: str, limit: int) -> None:
        """Create or resize a limit declared in code (``concurrency_limit=N``), once per size."""
        if self._ensured.get(name) != limit:
            self._client().create_concurrency_limit(name, limit)
            self._ensured[name] = limit
            self._names_read_at = float("-inf")

    def cancel(self, ticket: SlotTicket) -> SlotGrant | None:
        """Stop waiting; returns the grant if it arrived first (the caller must release)."""
        with self._cond:
            if ticket in self._queue:
                self._queue.remove(ticket)
                queued = True
            else:
                queued = False
        if queued:
            self._withdraw(ticket)
            ticket.resolve(None)
            return None
        return ticket.grant if ticket.grant is not None and ticket.grant.granted else None

    def release(self, lease_id: uuid.UUID | None) -> bool:
        """Free a lease's slots (a no-op for None) and let waiters here try at once. False
        when the store could not be told (it did not answer within the retry budget): the
        slots are then freed when the lease expires, and a warning says so. Never raises:
        a release runs on the way out of a run or a ``concurrency()`` block, which must
        not fail for it."""
        if lease_id is None:
            return True
        self.keeper.drop(lease_id)
        try:
            self._client().release_concurrency_slots(lease_id)
        except Exception as exc:
            print(
                f"anabranch: warning: concurrency slots could not be released ({exc}); they "
                f"are freed when their lease expires, within {self.lease_seconds:g} s.",
                file=sys.stderr,
            )
            return False
        finally:
            with self._cond:
                self._released += 1
                if self._queue:
                    self._woken = True
                    self._cond.notify()
        return True

    def release_all(self) -> None:
        """Free every lease this process holds (on interrupt and at exit). Once the store
        fails to answer, the rest are left to expire: each would wait out the retry budget."""
        for lease_id in self.keeper.held():
            if not self.release(lease_id):
                for left in self.keeper.held():
                    self.keeper.drop(left)
                return

    def _settle(self, ticket: SlotTicket, grant: SlotGrant) -> None:
        if grant.error:
            missing = grant.error.startswith("No concurrency limit")
            error_type = UnknownConcurrencyLimit if missing else ConcurrencySlotError
            ticket.resolve(None, error_type(grant.error))
            return
        if grant.lease_id is not None:
            self.keeper.hold(
                HeldLease(grant.lease_id, grant.limited_by, ticket.request.holder, ticket.logger)
            )
        ticket.resolve(grant)

    def _settle_safely(self, ticket: SlotTicket, grant: SlotGrant) -> None:
        """Settle from the broker thread: a failing callback must not stop the thread that
        serves every waiter, nor keep slots nobody will use."""
        try:
            self._settle(ticket, grant)
        except Exception as exc:
            print(f"anabranch: a slot callback failed ({exc!r}); its slots are released.",
                  file=sys.stderr)
            self.release(grant.lease_id)

    def cancel_all(self) -> None:
        """Give up every place in line of this process (interrupt, exit).

        Waits (bounded) for the waiting room's attempt under way: it may renew a ticket after
        it was withdrawn here, and only the waiting room's thread withdraws it again."""
        with self._cond:
            queued = list(self._queue)
        for ticket in queued:
            late = self.cancel(ticket)
            if late is not None:
                self.release(late.lease_id)
        with self._idle:
            self._idle.wait_for(lambda: not self._attempt_in_flight, _ATTEMPT_SETTLE_SECONDS)

    def _serve(self) -> None:
        delay = _MIN_POLL
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                if not self._woken:
                    self._cond.wait(delay)
                self._woken = False
                tries, keeps = self._next_attempt()
                self._attempt_in_flight = True
            try:
                delay = self._attempt(tries, keeps, delay)
            finally:
                with self._idle:
                    self._attempt_in_flight = False
                    self._idle.notify_all()

    def _next_attempt(self) -> tuple[list[SlotTicket], list[SlotTicket]]:
        """The requests to try (the first of each group, as many as its window allows) and
        the ones that only keep their place: not yet placed, or all of them when their
        tickets are due for renewal. Called with the lock held."""
        extra, self._released = self._released, 0
        renew = _clock.monotonic() - self._places_renewed_at >= _RENEW_PLACES_SECONDS
        if renew:
            self._places_renewed_at = _clock.monotonic()
        asked: dict[tuple[Any, ...], int] = {}
        tries: list[SlotTicket] = []
        keeps: list[SlotTicket] = []
        for ticket in self._queue:
            count = asked.get(ticket.group, 0)
            if count < self._windows.get(ticket.group, 1) + extra:
                asked[ticket.group] = count + 1
                tries.append(ticket)
            elif renew or not ticket.placed:
                keeps.append(ticket)
        return tries, keeps

    def _attempt(self, tries: list[SlotTicket], keeps: list[SlotTicket], delay: float) -> float:
        """Ask for the tried requests (and keep the others' places) in one call; returns
        the delay before the next try."""
        requests = [t.request for t in tries]
        requests += [t.request.model_copy(update={"keep_place": True}) for t in keeps]
        with self._cond:
            self._stats["attempts"] += 1
            self._stats["requests_tried"] += len(tries)
            self._stats["places_kept"] += len(keeps)
        try:
            grants = self._client().acquire_concurrency_slots(requests)
        except Exception as exc:
            self._fail_all(exc)
            return _MIN_POLL
        for ticket in keeps:
            ticket.placed = True
        settled = []
        outcome: dict[tuple[Any, ...], bool] = {}
        for ticket, grant in zip(tries, grants[: len(tries)], strict=True):
            ticket.placed = True
            moved = grant.granted or grant.error is not None
            outcome[ticket.group] = outcome.get(ticket.group, True) and moved
            if moved:
                settled.append((ticket, grant))
            else:
                ticket.waiting_for = grant.waiting_for
        with self._cond:
            for group, all_moved in outcome.items():
                tried = sum(1 for t in tries if t.group == group)
                self._windows[group] = 2 * tried if all_moved else 1
            cancelled = [t for t in tries + keeps if t not in self._queue]
            for ticket, _ in settled:
                if ticket not in cancelled:
                    self._queue.remove(ticket)
            more = any(outcome.values()) and bool(self._queue)
        # Cancelled while this attempt was under way: the attempt may have granted slots
        # or renewed the waiter's ticket, so give both back.
        for ticket in cancelled:
            self._withdraw(ticket)
        for ticket, grant in settled:
            if ticket not in cancelled:
                self._settle_safely(ticket, grant)
            elif grant.lease_id is not None:
                self.release(grant.lease_id)
        if more:
            # A whole window moved: the line may move further at once.
            return 0.0
        return _MIN_POLL if settled else min(delay * 2, _MAX_POLL)

    def _fail_all(self, exc: Exception) -> None:
        """The store did not answer within the client's retry budget: every waiter here
        fails with that, rather than wait on a store that is gone."""
        with self._cond:
            queued, self._queue = self._queue, []
        for ticket in queued:
            ticket.resolve(None, _unreachable(ticket.request, exc))

    def _withdraw(self, ticket: SlotTicket) -> None:
        """Give up a place in line, best effort: a ticket left behind lapses by itself."""
        with contextlib.suppress(Exception):
            self._client().withdraw_concurrency_waiter(ticket.request.waiter_id)


def _unreachable(request: SlotRequest, exc: Exception) -> ConcurrencySlotError:
    why = "did not answer" if isinstance(exc, StoreUnavailable) else "failed to answer"
    error = ConcurrencySlotError(
        f"Could not ask for slots of concurrency limits {request.names}: the store {why} "
        f"({exc}). Nothing is held."
    )
    error.__cause__ = exc
    return error


def _new_broker(settings: Settings) -> SlotBroker:
    if not _brokers.all():
        atexit.register(release_everything)
    return SlotBroker(get_client, settings.concurrency_lease_seconds)


_brokers: PerStore[SlotBroker] = PerStore(_new_broker)


def get_broker() -> SlotBroker:
    """The broker for the store the current settings point at (one per store per process)."""
    return _brokers.get()


def release_everything() -> None:
    """Free every lease and place in line of this process, in every store (interrupt, exit)."""
    for broker in _brokers.all():
        broker.cancel_all()
        broker.release_all()
