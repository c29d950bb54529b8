"""Getting slots: one attempt in the caller's thread, then a waiting room.

Every waiting request of this process sits in one queue, in arrival order, served by one
thread that asks the store for all of them in a single transaction; a release in this
process wakes it at once, otherwise it polls with a short back-off (other processes'
releases). So hundreds of waiters cost one small transaction per poll, not hundreds.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from anabranch.client import get_client
from anabranch.concurrency._leases import HeldLease, LeaseKeeper
from anabranch.exceptions import ConcurrencySlotError, UnknownConcurrencyLimit
from anabranch.schemas import SlotGrant, SlotRequest
from anabranch.settings import PerStore

if TYPE_CHECKING:
    from anabranch._settings import Settings

_MIN_POLL = 0.002
_MAX_POLL = 0.015
_NAMES_TTL = 1.0
_ATTEMPT_SETTLE_SECONDS = 5.0


class SlotTicket:
    """One request's place in the waiting room; ``wait()`` until its slots are granted."""

    def __init__(self, request: SlotRequest, on_done: Callable[[SlotTicket], None] | None):
        self.request = request
        self.on_done = on_done
        self.grant: SlotGrant | None = None
        self.error: Exception | None = None
        self.waiting_for: str | None = None
        self.logger: Any = None
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
        # Always one attempt first: a denied attempt leaves the request's ticket in the store,
        # which is what keeps arrival order across this process and every other.
        (grant,) = self._client().acquire_concurrency_slots([request])
        if grant.granted or grant.error:
            self._settle(ticket, grant)
            return ticket
        ticket.waiting_for = grant.waiting_for
        if on_wait is not None:
            on_wait(ticket.waiting_for or f"concurrency limits {request.names}")
        with self._cond:
            self._queue.append(ticket)
            self._woken = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="anabranch-slot-broker", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return ticket

    def limit_names(self) -> frozenset[str]:
        """Names of the existing limits, refreshed at most once a second: tags are checked
        against it so a tagged run pays a round trip only when a tag names a limit."""
        now = time.monotonic()
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
            self._client().withdraw_concurrency_waiter(ticket.request.waiter_id)
            ticket.resolve(None)
            return None
        return ticket.grant if ticket.grant is not None and ticket.grant.granted else None

    def release(self, lease_id: uuid.UUID | None) -> None:
        """Free a lease's slots (a no-op for None) and let waiters here try at once."""
        if lease_id is None:
            return
        self.keeper.drop(lease_id)
        self._client().release_concurrency_slots(lease_id)
        with self._cond:
            if self._queue:
                self._woken = True
                self._cond.notify()

    def release_all(self) -> None:
        """Free every lease this process holds (on interrupt and at exit)."""
        for lease_id in self.keeper.held():
            try:
                self.release(lease_id)
            except Exception:
                self.keeper.drop(lease_id)

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
                batch = list(self._queue)
                self._attempt_in_flight = True
            try:
                delay = self._attempt(batch, delay)
            finally:
                with self._idle:
                    self._attempt_in_flight = False
                    self._idle.notify_all()

    def _attempt(self, batch: list[SlotTicket], delay: float) -> float:
        """Ask for every waiting request at once; returns the delay before the next try."""
        try:
            grants = self._client().acquire_concurrency_slots([t.request for t in batch])
        except Exception:
            return min(delay * 2, 1.0)
        settled = []
        for ticket, grant in zip(batch, grants, strict=True):
            if grant.granted or grant.error:
                settled.append((ticket, grant))
            else:
                ticket.waiting_for = grant.waiting_for
        with self._cond:
            cancelled = [t for t in batch if t not in self._queue]
            for ticket, _ in settled:
                if ticket not in cancelled:
                    self._queue.remove(ticket)
        # Cancelled while this attempt was under way: the attempt may have granted slots
        # or renewed the waiter's ticket, so give both back.
        for ticket in cancelled:
            self._client().withdraw_concurrency_waiter(ticket.request.waiter_id)
        for ticket, grant in settled:
            if ticket not in cancelled:
                self._settle_safely(ticket, grant)
            elif grant.lease_id is not None:
                self._client().release_concurrency_slots(grant.lease_id)
        return _MIN_POLL if settled else min(delay * 2, _MAX_POLL)


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
