"""Background services started with the app: the lease reaper, zombie detection, the
scheduler (upcoming runs of scheduled deployments, overdue runs marked Late) and the
automations (``automations.service``).

All are idempotent (delete what expired, crash what went silent, make the run with a given
idempotency key), so every replica of the server may run them; no replica depends on another.

Zombie detection only judges silence it could have heard: a run's heartbeats can not arrive
while the server (or its database) is down, so after a start or a database outage the
service waits a whole silence window, plus the clients' longest back-off, before it crashes
anything. A flow that ran on through a server restart is not crashed for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from anabranch import _clock
from anabranch.client.embedded import EmbeddedClient
from anabranch.orchestration.work_pools import mark_workers_offline
from anabranch.orchestration.zombies import silence_limit
from anabranch.server.automations.service import AutomationServices

logger = logging.getLogger("anabranch.server")

REAP_INTERVAL_SECONDS = 5.0
# Room for clients to find the server back: their back-off between attempts is at most
# 2 s, and a batch may need a few attempts' worth of time to arrive.
RECONNECT_SECONDS = 10.0


def start(
    group: TaskGroup, client: EmbeddedClient, settings: Any, ui_url: str | None = None
) -> None:
    """Start every service in ``group``; they stop when the group is cancelled."""
    AutomationServices(client, settings, ui_url or settings.ui_url).start(group)
    group.start_soon(_every, REAP_INTERVAL_SECONDS, "lease reaper", client.reap_concurrency_leases)
    detector = ZombieDetector(client, silence_limit(settings.heartbeat_seconds))
    group.start_soon(_every, settings.heartbeat_seconds, "zombie detection", detector.run)
    group.start_soon(_every, settings.scheduler_seconds, "scheduler", client.schedule_runs)
    group.start_soon(
        _every, settings.heartbeat_seconds, "worker watch",
        lambda: client.run(mark_workers_offline, {}, writes=True),
    )


class ZombieDetector:
    """Crashes silent runs, once it has itself been reachable for long enough to know."""

    def __init__(self, client: EmbeddedClient, silent_for: float) -> None:
        self.client = client
        self.listening_for = silent_for + RECONNECT_SECONDS
        self.listening_since = _clock.monotonic()

    def run(self) -> None:
        if _clock.monotonic() - self.listening_since < self.listening_for:
            return
        try:
            crashed = self.client.crash_zombies()
        except Exception:
            # The database was away: heartbeats could not be stored meanwhile either.
            self.listening_since = _clock.monotonic()
            raise
        if crashed:
            logger.warning("Crashed %d flow run(s) without heartbeat: %s", len(crashed), crashed)


async def _every(interval: float, name: str, work: Callable[[], Any]) -> None:
    while True:
        await anyio.sleep(interval)
        try:
            await anyio.to_thread.run_sync(work)
        except Exception:
            # A database hiccup must not stop the service; the next round tries again.
            logger.exception("The %s failed; retrying in %g s", name, interval)
