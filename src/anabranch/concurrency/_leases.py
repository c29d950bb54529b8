"""Keeping held leases alive: one background thread per store renews every lease this
process holds, every third of the lease time.

A failed renewal is retried with back-off and never stops a run by itself; only a lease the
store says is gone (expired while unreachable, reset, deleted) is reported, as a warning in
the holder's run logs.
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anabranch import _clock

_fallback_logger = logging.getLogger("anabranch.concurrency")


@dataclass
class HeldLease:
    lease_id: uuid.UUID
    names: list[str]
    holder: str
    logger: Any


class LeaseKeeper:
    """The leases this process holds in one store, renewed until released."""

    def __init__(self, client: Callable[[], Any], lease_seconds: float) -> None:
        self._client = client
        self.lease_seconds = lease_seconds
        self._held: dict[uuid.UUID, HeldLease] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, lease: HeldLease) -> None:
        with self._lock:
            self._held[lease.lease_id] = lease
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._renew_forever, name="anabranch-lease-keeper", daemon=True
                )
                self._thread.start()

    def drop(self, lease_id: uuid.UUID) -> None:
        with self._lock:
            self._held.pop(lease_id, None)

    def held(self) -> list[uuid.UUID]:
        with self._lock:
            return list(self._held)

    def _renew_forever(self) -> None:
        interval = self.lease_seconds / 3
        while not self._stop.wait(interval):
            self.renew_now()

    def renew_now(self) -> None:
        """Renew every held lease once, retrying a failing store with back-off until the
        leases would expire anyway."""
        lease_ids = self.held()
        if not lease_ids:
            return
        backoff = _clock.Backoff(self.lease_seconds * 2 / 3, first=0.1, ceiling=2.0)
        while True:
            try:
                client = self._client()
                lost = client.renew_concurrency_leases(lease_ids, self.lease_seconds)
                client.reap_concurrency_leases()
                break
            except Exception as exc:
                delay = backoff.next_delay()
                if delay is None:
                    print(f"anabranch: could not renew concurrency leases: {exc}", file=sys.stderr)
                    return
                self._stop.wait(delay)
        for lease_id in lost:
            with self._lock:
                lease = self._held.pop(lease_id, None)
            if lease is not None:
                (lease.logger or _fallback_logger).warning(
                    "The concurrency slots of %s on %s were lost (the lease expired, or the "
                    "limit was reset or deleted); it keeps running, but the limit no longer "
                    "counts it.",
                    lease.holder,
                    lease.names,
                )
