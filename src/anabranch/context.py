"""The run contexts: which flow run and task run the current code belongs to.

Both live in contextvars, so threads started by task runners (which copy the context) and
asyncio tasks see the run that submitted them.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from anabranch.exceptions import MissingContextError
from anabranch.schemas import FlowRun, TaskRun


@dataclass
class FlowRunContext:
    """The flow run whose body is executing, and the task runner its submits go to."""

    flow: Any
    flow_run: FlowRun
    task_runner: Any
    recorder: Any
    log_prints: bool = False
    task_run_counters: dict[str, Iterator[int]] = field(default_factory=dict)
    # The generated names of the flow runs of this root run's tree (one set, shared down).
    run_names: set[str] = field(default_factory=set)

    def next_task_run_index(self, task_key: str) -> int:
        counter = self.task_run_counters.get(task_key)
        if counter is None:
            counter = self.task_run_counters.setdefault(task_key, itertools.count())
        return next(counter)

    @classmethod
    def get(cls) -> FlowRunContext | None:
        return _flow_run_context.get()


@dataclass
class TaskRunContext:
    """The task run whose body is executing."""

    task: Any
    task_run: TaskRun
    parameters: dict[str, Any]
    recorder: Any
    log_prints: bool = False

    @classmethod
    def get(cls) -> TaskRunContext | None:
        return _task_run_context.get()


_flow_run_context: ContextVar[FlowRunContext | None] = ContextVar(
    "anabranch_flow_run", default=None
)
_task_run_context: ContextVar[TaskRunContext | None] = ContextVar(
    "anabranch_task_run", default=None
)
_tags: ContextVar[frozenset[str]] = ContextVar("anabranch_tags", default=frozenset())


def get_run_context() -> TaskRunContext | FlowRunContext:
    """The innermost run context: the task run if inside one, else the flow run."""
    ctx = _task_run_context.get() or _flow_run_context.get()
    if ctx is None:
        raise MissingContextError(
            "There is no active flow or task run; call this from inside a @flow or @task."
        )
    return ctx


@contextlib.contextmanager
def enter_flow_run(ctx: FlowRunContext) -> Iterator[FlowRunContext]:
    """Make ``ctx`` the current flow run; a subflow body is not inside its caller's task."""
    flow_token = _flow_run_context.set(ctx)
    task_token = _task_run_context.set(None)
    try:
        yield ctx
    finally:
        _task_run_context.reset(task_token)
        _flow_run_context.reset(flow_token)


@contextlib.contextmanager
def enter_task_run(ctx: TaskRunContext) -> Iterator[TaskRunContext]:
    token = _task_run_context.set(ctx)
    try:
        yield ctx
    finally:
        _task_run_context.reset(token)


def current_tags() -> frozenset[str]:
    return _tags.get()


@contextlib.contextmanager
def tags(*new_tags: str) -> Iterator[frozenset[str]]:
    """Add tags to every flow and task run created inside this block."""
    merged = _tags.get() | frozenset(new_tags)
    token = _tags.set(merged)
    try:
        yield merged
    finally:
        _tags.reset(token)
