"""The wire contract, defined once and used by the engine, the clients and the server."""

from anabranch.schemas.runs import FlowRun, LogRecord, RecordBatch, StateRecord, TaskRun
from anabranch.schemas.states import TERMINAL_TYPES, State, StateType

__all__ = [
    "TERMINAL_TYPES",
    "FlowRun",
    "LogRecord",
    "RecordBatch",
    "State",
    "StateRecord",
    "StateType",
    "TaskRun",
]
