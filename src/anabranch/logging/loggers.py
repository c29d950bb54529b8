"""Loggers bound to a run, so each line is stored with its flow run and task run ids."""

from __future__ import annotations

import logging
from typing import Any

from anabranch.context import FlowRunContext, TaskRunContext, get_run_context
from anabranch.schemas import FlowRun, TaskRun

_flow_logger = logging.getLogger("anabranch.flow_runs")
_task_logger = logging.getLogger("anabranch.task_runs")


class RunLoggerAdapter(logging.LoggerAdapter):
    """Adds the run's ids, label and recorder to every record it emits."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def flow_run_logger(flow_run: FlowRun, recorder: Any) -> RunLoggerAdapter:
    return RunLoggerAdapter(
        _flow_logger,
        {
            "flow_run_id": flow_run.id,
            "task_run_id": None,
            "run_label": f"Flow run {flow_run.name!r}",
            "recorder": recorder,
        },
    )


def task_run_logger(task_run: TaskRun, recorder: Any) -> RunLoggerAdapter:
    return RunLoggerAdapter(
        _task_logger,
        {
            "flow_run_id": task_run.flow_run_id,
            "task_run_id": task_run.id,
            "run_label": f"Task run {task_run.name!r}",
            "recorder": recorder,
        },
    )


def get_run_logger() -> RunLoggerAdapter:
    """A logger for the current flow or task run; its lines are stored with the run."""
    ctx = get_run_context()
    if isinstance(ctx, TaskRunContext):
        return task_run_logger(ctx.task_run, ctx.recorder)
    assert isinstance(ctx, FlowRunContext)
    return flow_run_logger(ctx.flow_run, ctx.recorder)
