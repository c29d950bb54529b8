"""The wire contract, defined once and used by the engine, the clients and the server."""

from anabranch.schemas.concurrency import (
    ConcurrencyLimit,
    SlotGrant,
    SlotHolder,
    SlotRequest,
)
from anabranch.schemas.runs import FlowRun, LogRecord, RecordBatch, StateRecord, TaskRun
from anabranch.schemas.states import TERMINAL_TYPES, State, StateType

__all__ = [
    "ConcurrencyLimit",
    "SlotGrant",
    "SlotHolder",
    "SlotRequest",
    "TERMINAL_TYPES",
    "FlowRun",
    "LogRecord",
    "RecordBatch",
    "State",
    "StateRecord",
    "StateType",
    "TaskRun",
]
