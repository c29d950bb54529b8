"""The concurrency slots a run holds while it runs: by its tags (task runs) and by its
``concurrency_limit=N`` (flows and tasks), taken before Running and given back at the end."""

from __future__ import annotations

from typing import Any

from anabranch._engine.lifecycle import RunLifecycle
from anabranch.concurrency._broker import SlotBroker, SlotTicket, get_broker
from anabranch.schemas import SlotRequest
from anabranch.states import Failed, Pending


def check_limit(limit: int | None, owner: str) -> int | None:
    """``concurrency_limit=`` must be a whole number of runs, at least 1."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(
            f"concurrency_limit of {owner} must be a whole number >= 1, got {limit!r}."
        )
    return limit


def implicit_limit_name(kind: str, key: str) -> str:
    """The limit behind ``concurrency_limit=N``: one per flow name or task."""
    return f"{kind}:{key}"


class RunSlots:
    """Asks for a run's slots, records it Pending while it waits, and releases them."""

    def __init__(self, lifecycle: RunLifecycle, names: list[str]) -> None:
        self.lifecycle = lifecycle
        self.names = names
        self.broker: SlotBroker = get_broker()
        self.ticket: SlotTicket | None = None
        self.lease_id: Any = None

    @classmethod
    def for_run(
        cls,
        lifecycle: RunLifecycle,
        tags: list[str],
        implicit: str | None,
        implicit_limit: int | None,
    ) -> RunSlots | None:
        """None when nothing limits the run (the common case costs no round trip). When the
        store can not say which limits there are, the run ends Failed, unstarted, and the
        error is raised to its caller: it is never left Pending."""
        if not tags and implicit is None:
            return None
        broker = get_broker()
        try:
            names = [tag for tag in tags if tag in broker.limit_names()] if tags else []
            if implicit is not None and implicit_limit is not None:
                broker.ensure_limit(implicit, implicit_limit)
                names.append(implicit)
        except Exception as exc:
            lifecycle.finish_without_running(
                Failed(f"{lifecycle.label} did not run: its concurrency limits could not be "
                       f"looked up ({exc})", data=exc)
            )
            raise
        return cls(lifecycle, sorted(set(names))) if names else None

    def request(self, on_done: Any = None) -> SlotTicket:
        run = self.lifecycle.run
        request = SlotRequest(
            names=self.names,
            holder=f"{self.lifecycle.kind.lower()} run {run.name!r}",
            run_id=run.id,
            strict=False,
        )
        self.ticket = self.broker.request(
            request, on_done=on_done, logger=self.lifecycle.logger, on_wait=self._show_waiting
        )
        return self.ticket

    def _show_waiting(self, reason: str) -> None:
        self.lifecycle.set_state(Pending(f"Waiting for {reason}", name="Pending"))

    def wait(self) -> bool:
        """Block until granted; False (and the run Failed) if the slots can never come."""
        ticket = self.ticket or self.request()
        try:
            grant = ticket.wait()
        except Exception as exc:
            self.lifecycle.finish_without_running(Failed(str(exc), data=exc))
            return False
        self.lease_id = grant.lease_id if grant is not None else None
        return True

    def release(self) -> None:
        """Give the slots back; if the store can not be told, the lease lapses by itself
        (the broker warns), and the run is not failed for it."""
        lease_id, self.lease_id = self.lease_id, None
        self.broker.release(lease_id)
