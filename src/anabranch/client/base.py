"""The one client interface; the embedded and HTTP transports both implement it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from anabranch.schemas import (
    ConcurrencyLimit,
    FlowRun,
    LogRecord,
    RecordBatch,
    SlotGrant,
    SlotRequest,
    StateRecord,
    StateType,
    TaskRun,
)


class AnabranchClient(Protocol):
    """Everything the engine and the CLI ask of the store.

    Writes come in batches (``write_batch``) so the hot path never waits on a round trip;
    reads are for the CLI, tests and users' scripts.
    """

    def write_batch(self, batch: RecordBatch) -> None:
        """Apply run snapshots, state transitions and log lines; idempotent."""

    def read_flow_run(self, flow_run_id: uuid.UUID) -> FlowRun:
        """One flow run; raises ObjectNotFound naming the id if there is none."""

    def read_flow_runs(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        state_types: Sequence[StateType] | None = None,
        state_names: Sequence[str] | None = None,
        flow_name: str | None = None,
        parent_flow_run_id: uuid.UUID | None = None,
    ) -> list[FlowRun]:
        """Flow runs, newest first, filtered by state type, state name (any case), flow name
        or parent."""

    def read_task_runs(self, *, flow_run_id: uuid.UUID | None = None) -> list[TaskRun]:
        """Task runs of a flow run (all if None), oldest first."""

    def read_task_run(self, task_run_id: uuid.UUID) -> TaskRun:
        """One task run; raises ObjectNotFound naming the id if there is none."""

    def read_states(self, run_id: uuid.UUID) -> list[StateRecord]:
        """The state history of a flow or task run, oldest first."""

    def read_logs(
        self,
        *,
        flow_run_id: uuid.UUID | None = None,
        task_run_id: uuid.UUID | None = None,
        limit: int | None = None,
    ) -> list[LogRecord]:
        """Log lines, oldest first, of a flow run (including its task runs) or one task run."""

    def create_concurrency_limit(
        self,
        name: str,
        limit: int,
        *,
        active: bool = True,
        slot_decay_per_second: float | None = None,
    ) -> ConcurrencyLimit:
        """Create a named limit; if it exists, set its size (and decay, when given) only."""

    def read_concurrency_limit(self, name: str) -> ConcurrencyLimit:
        """The limit with its live holders; ObjectNotFound (with the create hint) if none."""

    def read_concurrency_limits(self) -> list[ConcurrencyLimit]:
        """Every limit, by name, with the slots in use."""

    def update_concurrency_limit(
        self,
        name: str,
        *,
        limit: int | None = None,
        active: bool | None = None,
        slot_decay_per_second: float | None = None,
    ) -> ConcurrencyLimit:
        """Change a limit's size, activity or slot decay."""

    def reset_concurrency_limit(self, name: str) -> ConcurrencyLimit:
        """Free every slot of a limit (holders keep running)."""

    def delete_concurrency_limit(self, name: str) -> None:
        """Delete a limit (holders keep running)."""

    def acquire_concurrency_slots(self, requests: Sequence[SlotRequest]) -> list[SlotGrant]:
        """Try each request in order, atomically each; one answer per request."""

    def release_concurrency_slots(self, lease_id: uuid.UUID) -> bool:
        """Free a lease's slots; False if it was already gone."""

    def renew_concurrency_leases(
        self, lease_ids: Sequence[uuid.UUID], seconds: float
    ) -> list[uuid.UUID]:
        """Extend leases by ``seconds``; returns the ones that were lost."""

    def withdraw_concurrency_waiter(self, waiter_id: uuid.UUID) -> None:
        """Give up a waiter's place in line."""

    def reap_concurrency_leases(self) -> int:
        """Delete expired leases and lapsed waiter tickets; returns how many leases went."""

    def close(self) -> None:
        """Release connections; the client can not be used afterwards."""

    def __enter__(self) -> AnabranchClient:
        """``with get_client() as client:``, as in Prefect."""

    def __exit__(self, *exc_info: Any) -> None:
        """Leaves the client open: get_client() shares one client per store per process."""
