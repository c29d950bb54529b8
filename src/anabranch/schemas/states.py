"""State: what a run is doing now, with the result or error it ended with."""

from __future__ import annotations

import enum
import importlib
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from anabranch import _clock
from anabranch._ids import new_id
from anabranch.exceptions import CancelledRun, CrashedRun, FailedRun, MissingResult
from anabranch.results.references import ResultRef


class StateType(str, enum.Enum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"


TERMINAL_TYPES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)

_NOT_SET: Any = object()


class State(BaseModel):
    """A run's state. ``data`` holds the in-memory result or exception and never travels;
    ``result_ref`` points at the persisted result, so ``result()`` works in any process."""

    model_config = ConfigDict(arbitrary_types_allowed=True, defer_build=True)

    type: StateType
    name: str
    message: str | None = None
    timestamp: datetime = Field(default_factory=_clock.now)
    id: uuid.UUID = Field(default_factory=new_id)
    result_ref: ResultRef | None = None
    data: Any = Field(default=None, exclude=True, repr=False)

    def __str__(self) -> str:
        return f"{self.name}({self.message or ''})" if self.message else f"{self.name}()"

    def is_scheduled(self) -> bool:
        return self.type is StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type is StateType.PENDING

    def is_running(self) -> bool:
        return self.type is StateType.RUNNING

    def is_completed(self) -> bool:
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type is StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type is StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type is StateType.CANCELLED

    def is_cancelling(self) -> bool:
        return self.type is StateType.CANCELLING

    def is_paused(self) -> bool:
        return self.type is StateType.PAUSED

    def is_final(self) -> bool:
        return self.type in TERMINAL_TYPES

    def result(self, raise_on_failure: bool = True, fetch: bool = True) -> Any:
        """The run's return value; for a failed run, raise its exception (or return it when
        ``raise_on_failure=False``)."""
        if self.type in (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED):
            error = self._error()
            if raise_on_failure:
                raise error
            return error
        if self.result_ref is not None and self.data is None:
            # Imported by the processes that read results only: a state is data, and the
            # server (which never unpickles) must not import the serializers with it.
            return importlib.import_module("anabranch.results.storage").load_result(
                self.result_ref
            )
        if self.type is not StateType.COMPLETED:
            raise MissingResult(f"State {self} is not final and has no result yet.")
        if "data" not in self.model_fields_set:
            raise MissingResult(
                f"The result of this {self.name} state was not persisted, so only the process "
                "that produced it had it; set persist_result=True to read it elsewhere."
            )
        return self.data

    def _error(self) -> BaseException:
        if isinstance(self.data, BaseException):
            return self.data
        message = self.message or self.name
        if self.type is StateType.CRASHED:
            return CrashedRun(message)
        if self.type is StateType.CANCELLED:
            return CancelledRun(message)
        return FailedRun(message)
