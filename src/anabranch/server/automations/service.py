"""The server's automation services: evaluating triggers over the event feed, carrying out
the actions of firings, and forgetting old events.

Evaluation runs in one replica at a time (``orchestration.triggers`` holds the service for
a lease); delivery runs in every replica, each action claimed by one. Both only look at the
database when a cheap read says there is something to do, so an idle server writes nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import anyio
from anyio.abc import TaskGroup

from anabranch import _clock
from anabranch._ids import new_id
from anabranch._sealed import UnsealError, unseal
from anabranch.client.embedded import EmbeddedClient
from anabranch.orchestration import action_queue, events, triggers
from anabranch.schemas.automations import CallWebhook, SendNotification
from anabranch.server.automations.outbound import DeliveryError, call_webhook, send_notification
from anabranch.server.automations.templates import (
    TemplateError,
    build_template_context,
    render,
)

logger = logging.getLogger("anabranch.server")

# Actions carried out at once by one replica (each may wait on a slow receiver).
_DELIVERIES_AT_ONCE = 8
_TRIM_EVERY_SECONDS = 3600.0
# An action's claim outlasts the longest attempt (a receiver's timeouts) with room to spare.
_CLAIM_SECONDS = 60.0
_SEND_TIMEOUT_SECONDS = 10.0
# How long a replica holds the evaluator: another takes over this long after it dies.
_LEASE_SECONDS = 10.0


class AutomationServices:
    """The evaluator, the delivery loop and the event trimmer of one server process."""

    def __init__(self, client: EmbeddedClient, settings: Any, ui_url: str | None) -> None:
        self.client = client
        self.settings = settings
        self.ui_url = (ui_url or "").rstrip("/") or None
        # Names this replica in the service row: host and process, unique per start.
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{new_id().hex[:8]}"
        self.woken = anyio.Event()
        self.lease_renewed_at = float("-inf")
        self.limiter = anyio.CapacityLimiter(_DELIVERIES_AT_ONCE)

    def start(self, group: TaskGroup) -> None:
        group.start_soon(self._evaluate_forever)
        group.start_soon(self._deliver_forever, group)
        group.start_soon(self._trim_forever)

    async def _evaluate_forever(self) -> None:
        poll = self.settings.automations_poll_seconds
        while True:
            await anyio.sleep(poll)
            try:
                fired = await anyio.to_thread.run_sync(self.evaluate_once)
            except Exception:
                logger.exception("Evaluating automations failed; retrying in %g s", poll)
                continue
            if fired:
                self._wake()

    def evaluate_once(self) -> int:
        """One round if there is work (or the lease wants renewing); how many fired."""
        renew = _clock.monotonic() - self.lease_renewed_at > _LEASE_SECONDS / 3
        if not renew and not self.client.run(triggers.has_trigger_work, {}, writes=False):
            return 0
        fired = self.client.run(
            triggers.evaluate_triggers,
            {"holder": self.holder, "lease_seconds": _LEASE_SECONDS},
            writes=True,
        )
        if fired is not None:
            self.lease_renewed_at = _clock.monotonic()
        return fired or 0

    def _wake(self) -> None:
        self.woken.set()

    async def _deliver_forever(self, group: TaskGroup) -> None:
        poll = self.settings.automations_poll_seconds
        while True:
            with anyio.move_on_after(poll):
                await self.woken.wait()
            self.woken = anyio.Event()
            try:
                claimed = await anyio.to_thread.run_sync(self._claim)
            except Exception:
                logger.exception("Claiming automation actions failed; retrying in %g s", poll)
                continue
            for item in claimed:
                group.start_soon(self._deliver, item)

    def _claim(self) -> list[action_queue.ClaimedAction]:
        if not self.client.run(action_queue.has_due_actions, {}, writes=False):
            return []
        claimed: list[action_queue.ClaimedAction] = self.client.run(
            action_queue.claim_actions,
            {"limit": _DELIVERIES_AT_ONCE * 2, "claim_seconds": _CLAIM_SECONDS},
            writes=True,
        )
        return claimed

    async def _deliver(self, claimed: action_queue.ClaimedAction) -> None:
        async with self.limiter:
            try:
                await anyio.to_thread.run_sync(self.deliver, claimed)
            except Exception:
                # Recording the outcome failed (the database away): the claim lapses and
                # the action is tried again.
                logger.exception("Recording an automation action's outcome failed")

    def deliver(self, claimed: action_queue.ClaimedAction) -> str:
        """Carry out one claimed action and record how it went; its new status."""
        error = self._attempt(claimed)
        if error is not None:
            logger.warning(
                "Automation action %s (attempt %d) failed: %s",
                type(claimed.action).__name__, claimed.attempt, error,
            )
        status: str = self.client.run(
            action_queue.finish_action,
            {
                "action_id": claimed.id,
                "error": error,
                "max_attempts": self.settings.automation_action_attempts,
                "retry_seconds": self.settings.automation_retry_seconds,
            },
            writes=True,
        )
        return status

    def _attempt(self, claimed: action_queue.ClaimedAction) -> str | None:
        action = claimed.action
        if claimed.automation is None:
            return "The automation was deleted before this action was carried out."
        try:
            if isinstance(action, (SendNotification, CallWebhook)):
                self._send(claimed, action)
            else:
                self.client.run(
                    action_queue.carry_out_store_action, {"claimed": claimed}, writes=True
                )
        except (DeliveryError, TemplateError, UnsealError) as exc:
            return str(exc)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def _send(self, claimed: action_queue.ClaimedAction, action: Any) -> None:
        assert claimed.automation is not None  # Invariant: checked by _attempt
        run_url = None
        if self.ui_url and claimed.flow_run is not None:
            run_url = f"{self.ui_url}/runs/{claimed.flow_run.id}"
        context = build_template_context(
            claimed.event, claimed.flow_run, claimed.deployment, claimed.automation, run_url
        )
        if isinstance(action, SendNotification):
            send_notification(
                unseal(action.url),
                render(action.subject, context),
                render(action.body, context),
                timeout=_SEND_TIMEOUT_SECONDS,
            )
        else:
            call_webhook(
                unseal(action.url),
                action.method,
                {name: unseal(value) for name, value in action.headers.items()},
                render(action.payload, context),
                timeout=_SEND_TIMEOUT_SECONDS,
            )

    async def _trim_forever(self) -> None:
        while True:
            try:
                await anyio.to_thread.run_sync(
                    lambda: self.client.run(
                        events.trim_events,
                        {"retention_days": self.settings.events_retention_days},
                        writes=True,
                    )
                )
            except Exception:
                logger.exception("Forgetting old events failed; trying again later")
            await anyio.sleep(_TRIM_EVERY_SECONDS)
