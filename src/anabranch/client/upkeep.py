"""Upkeep of the store by the processes that use it: dead runs found without a server, and
run records spooled by earlier processes delivered.

Through a server, the server's services crash the runs whose process stopped heartbeating.
On the embedded store nobody else would, so the processes using it run the same idempotent
check now and then (at most once a heartbeat interval each): a flow's cancellation watcher,
a worker's loop, the CLI's reads, and ``run_deployment``'s wait (inside the embedded
client). Any of them finds a SIGKILLed run within a few heartbeat intervals.
"""

from __future__ import annotations

import threading
import uuid

from anabranch import _clock
from anabranch._per_store import current_store_key
from anabranch.client import get_client, new_client
from anabranch.client.spool import Spool
from anabranch.settings import get_settings

_checked_at: dict[str, float] = {}
_lock = threading.Lock()


def crash_dead_runs() -> list[uuid.UUID]:
    """On the embedded store, crash the runs whose process died and free their slots (at
    most once per heartbeat interval per process); the ids crashed. Through a server: none,
    the server does it."""
    settings = get_settings()
    if settings.api_url:
        return []
    key = current_store_key()
    with _lock:
        if _clock.monotonic() - _checked_at.get(key, float("-inf")) < settings.heartbeat_seconds:
            return []
        _checked_at[key] = _clock.monotonic()
    crashed: list[uuid.UUID] = get_client().crash_zombies()  # type: ignore[attr-defined]
    return crashed


def deliver_spool() -> int:
    """Deliver the run records earlier processes spooled for the current store, if it
    answers now (one quick attempt, no retries); how many batches were delivered."""
    settings = get_settings()
    store = settings.api_url or settings.resolved_database_url
    spool = Spool(settings.home_path, store)
    if not spool.waiting():
        return 0
    return spool.deliver(new_client(settings, retry_seconds=0).write_batch)
