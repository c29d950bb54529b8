"""The store's operations, each declared once (``_declare``), one module per noun.

``StoreOperations`` is the whole surface: every client (in process, over HTTP, awaited)
subclasses it and implements ``_call`` once, and the server registers a route for each of
``OPERATIONS``. Adding an operation touches its declaration and the orchestration function
that carries it out.
"""

from __future__ import annotations

from typing import Any

from anabranch.operations._declare import Operation, operations_of
from anabranch.operations.automations import AutomationOperations
from anabranch.operations.concurrency import ConcurrencyOperations
from anabranch.operations.deployments import DeploymentOperations
from anabranch.operations.events import EventOperations
from anabranch.operations.runs import RunOperations
from anabranch.operations.schedules import ScheduleOperations
from anabranch.operations.work_pools import WorkPoolOperations


class StoreOperations(
    RunOperations,
    ConcurrencyOperations,
    DeploymentOperations,
    WorkPoolOperations,
    ScheduleOperations,
    EventOperations,
    AutomationOperations,
):
    """Everything the engine, the CLI and users' scripts ask of the store.

    Writes come in batches (``write_batch``) so the hot path never waits on a round trip;
    reads are for the CLI, tests and users' scripts."""

    def _call(self, operation: Operation, arguments: dict[str, Any]) -> Any:
        """Carry out ``operation`` with ``arguments`` (by name, defaults filled in)."""
        raise NotImplementedError


OPERATIONS: list[Operation] = operations_of(StoreOperations)
BY_NAME: dict[str, Operation] = {op.name: op for op in OPERATIONS}

__all__ = ["BY_NAME", "OPERATIONS", "Operation", "StoreOperations"]
