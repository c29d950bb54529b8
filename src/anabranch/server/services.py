"""Background services started with the app: the lease reaper, zombie detection and the
scheduler (upcoming runs of scheduled deployments, overdue runs marked Late).

All are idempotent (delete what expired, crash what went silent, make the run with a given
idempotency key), so every replica of the server may run them; no replica depends on another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from anabranch import _clock
from anabranch.client.embedded import EmbeddedClient
from anabranch.database import write_transaction
from anabranch.orchestration.zombies import crash_zombies

logger = logging.getLogger("anabranch.server")

REAP_INTERVAL_SECONDS = 5.0
# A flow run is a zombie after this many heartbeat intervals without one.
ZOMBIE_AFTER_HEARTBEATS = 3


def start(group: TaskGroup, client: EmbeddedClient, settings: Any) -> None:
    """Start every service in ``group``; they stop when the group is cancelled."""
    group.start_soon(_every, REAP_INTERVAL_SECONDS, "lease reaper", client.reap_concurrency_leases)
    silent_for = ZOMBIE_AFTER_HEARTBEATS * settings.heartbeat_seconds

    def crash_silent_runs() -> None:
        with write_transaction(client.database_url) as conn:
            crashed = crash_zombies(conn, now=_clock.now(), silent_for=silent_for)
        if crashed:
            logger.warning("Crashed %d flow run(s) without heartbeat: %s", len(crashed), crashed)

    group.start_soon(_every, settings.heartbeat_seconds, "zombie detection", crash_silent_runs)
    group.start_soon(_every, settings.scheduler_seconds, "scheduler", client.schedule_runs)


async def _every(interval: float, name: str, work: Callable[[], Any]) -> None:
    while True:
        await anyio.sleep(interval)
        try:
            await anyio.to_thread.run_sync(work)
        except Exception:
            # A database hiccup must not stop the service; the next round tries again.
            logger.exception("The %s failed; retrying in %g s", name, interval)
