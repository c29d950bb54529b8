"""Task runs: created where they are called or submitted, executed in a worker, a child
process or the caller's thread."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from typing import Any

from anabranch._engine.inputs import resolve_inputs, wait_for_all
from anabranch._engine.lifecycle import RunLifecycle, drive_async, drive_sync
from anabranch._engine.parameters import render_run_name
from anabranch._engine.slots import RunSlots, implicit_limit_name
from anabranch.client.recorder import Recorder, get_recorder
from anabranch.context import FlowRunContext, TaskRunContext, current_tags, enter_task_run
from anabranch.exceptions import SerializationError, UpstreamTaskError
from anabranch.futures import AnabranchFuture
from anabranch.logging.handlers import configure_run_logging
from anabranch.logging.loggers import task_run_logger
from anabranch.logging.prints import install_print_capture
from anabranch.results.serializers import dumps_or_explain, get_serializer
from anabranch.results.storage import result_store
from anabranch.schemas import State, TaskRun
from anabranch.schemas._construct import construct
from anabranch.states import Completed, Failed, Pending
from anabranch.task_runners import TaskRunner, ThreadPoolTaskRunner

_loose_task_index = itertools.count()
_loose_runner: TaskRunner | None = None


def _runner_outside_flows() -> TaskRunner:
    """``.submit()`` outside a flow runs on one shared, bounded thread pool per process."""
    global _loose_runner
    if _loose_runner is None:
        _loose_runner = ThreadPoolTaskRunner()
    return _loose_runner


class TaskRunEngine:
    """One task run: its record, its inputs, and its execution."""

    def __init__(
        self,
        task: Any,
        run: TaskRun,
        parameters: dict[str, Any],
        recorder: Recorder,
        log_prints: bool,
        wait_for: Any = None,
    ) -> None:
        self.task = task
        self.run = run
        self.parameters = parameters
        self.recorder = recorder
        self.log_prints = log_prints
        self.wait_for = wait_for or ()
        self.lifecycle = RunLifecycle(
            task, run, task.run_options, recorder.record_task_run,
            lambda: task_run_logger(run, recorder), "Task",
        )
        self.lifecycle.cache_expiration = task.cache_expiration
        self.slots: RunSlots | None = None

    @classmethod
    def create(cls, task: Any, parameters: dict[str, Any], wait_for: Any = None) -> TaskRunEngine:
        """Record a new Pending task run in the current flow run (or alone)."""
        flow_ctx = FlowRunContext.get()
        task_ctx = TaskRunContext.get()
        if task_ctx is not None:
            flow_run_id = task_ctx.task_run.flow_run_id
            recorder, inherited_prints = task_ctx.recorder, task_ctx.log_prints
        elif flow_ctx is not None:
            flow_run_id = flow_ctx.flow_run.id
            recorder, inherited_prints = flow_ctx.recorder, flow_ctx.log_prints
        else:
            flow_run_id, recorder, inherited_prints = None, get_recorder(), False
        if task.task_run_name is not None:
            name = render_run_name(task.task_run_name, parameters, f"Task {task.name!r}")
        else:
            index = (
                flow_ctx.next_task_run_index(task.task_key)
                if flow_ctx is not None
                else next(_loose_task_index)
            )
            name = f"{task.name}-{index}"
        tags = current_tags() | task.tags
        run = construct(
            TaskRun,
            name=name,
            task_key=task.task_key,
            flow_run_id=flow_run_id,
            parameters=parameters,
            tags=sorted(tags),
        )
        log_prints = inherited_prints if task.log_prints is None else task.log_prints
        engine = cls(task, run, parameters, recorder, log_prints, wait_for)
        engine.lifecycle.set_state(Pending())
        engine.slots = RunSlots.for_run(
            engine.lifecycle,
            run.tags,
            implicit_limit_name("task", task.task_key) if task.concurrency_limit else None,
            task.concurrency_limit,
        )
        return engine

    def submit(self) -> AnabranchFuture[Any]:
        """Queue the run on the flow's runner. A run limited by concurrency slots (and with
        no upstream to wait for) is queued only once its slots are granted, so waiting for
        slots never occupies one of the runner's workers."""
        flow_ctx = FlowRunContext.get()
        runner = flow_ctx.task_runner if flow_ctx is not None else _runner_outside_flows()
        context = contextvars.copy_context()
        item = runner.prepare(lambda: context.run(self.run_in_runner, runner))
        if self.slots is not None and not self._has_upstream():
            self.slots.request(on_done=lambda _ticket: runner.enqueue(item))
        else:
            runner.enqueue(item)
        return AnabranchFuture(self.run, item)

    def run_in_runner(self, runner: TaskRunner) -> None:
        if not self._resolve_inputs() or not self._take_slots():
            return
        try:
            if not runner.runs_in_subprocesses:
                self.execute()
                return
            self._adopt(runner.execute(_execute_in_subprocess, *self._portable()))
        except Exception as exc:
            # The child process died or could not be reached; the task body's own errors
            # come back as a Failed state, not here.
            self.lifecycle.crash_with_message(
                f"{self.lifecycle.label} crashed in its worker process: "
                f"{type(exc).__name__}: {exc}"
            )
        finally:
            self._release_slots()

    def run_here(self) -> State:
        """A direct call: everything in the caller's thread."""
        if self._resolve_inputs() and self._take_slots():
            try:
                return self.execute()
            finally:
                self._release_slots()
        assert self.run.state is not None
        return self.run.state

    async def run_here_async(self) -> State:
        ready = await asyncio.to_thread(self._resolve_inputs)
        if not ready or not await asyncio.to_thread(self._take_slots):
            assert self.run.state is not None
            return self.run.state
        try:
            hit = self._cached_state()
            if hit is not None:
                return hit
            with enter_task_run(self._context()):
                return await drive_async(self.lifecycle, self._call_async)
        finally:
            await asyncio.to_thread(self._release_slots)

    def _has_upstream(self) -> bool:
        return bool(self.wait_for) or any(
            isinstance(v, AnabranchFuture) for v in self.parameters.values()
        )

    def _take_slots(self) -> bool:
        return self.slots is None or self.slots.wait()

    def _release_slots(self) -> None:
        if self.slots is not None:
            self.slots.release()

    def execute(self) -> State:
        """Run the attempts (cache, retries, timeout) in the current thread."""
        hit = self._cached_state()
        if hit is not None:
            return hit
        with enter_task_run(self._context()):
            if self.task.is_async:
                return asyncio.run(drive_async(self.lifecycle, self._call_async))
            return drive_sync(self.lifecycle, self._call_sync)

    def _context(self) -> TaskRunContext:
        if self.log_prints:
            install_print_capture()
        return TaskRunContext(
            task=self.task,
            task_run=self.run,
            parameters=self.parameters,
            recorder=self.recorder,
            log_prints=self.log_prints,
        )

    def _call_sync(self) -> Any:
        return self.task.shape.call(self.task.fn, self.parameters)

    async def _call_async(self) -> Any:
        return await self.task.shape.call(self.task.fn, self.parameters)

    def _resolve_inputs(self) -> bool:
        """Wait for upstream futures; a run whose upstream failed ends Failed, unstarted."""
        try:
            wait_for_all(self.wait_for)
            self.parameters = {k: resolve_inputs(v) for k, v in self.parameters.items()}
        except UpstreamTaskError as exc:
            self.lifecycle.finish_without_running(
                Failed(f"{self.lifecycle.label} did not run: {exc}", name="UpstreamFailed",
                       data=exc)
            )
            return False
        return True

    def _cached_state(self) -> State | None:
        task = self.task
        if task.cache_key_fn is None:
            return None
        key = task.cache_key_fn(self._context(), self.parameters)
        if key is None:
            return None
        self.lifecycle.cache_key = key
        self.run.cache_key = key
        if task.refresh_cache:
            return None
        store = result_store(task.run_options.result_storage)
        found, value = store.read_cached(key, task.run_options.result_serializer)
        if not found:
            return None
        ref = store.reference(key, task.run_options.result_serializer)
        cached = Completed(name="Cached", data=value, result_ref=ref)
        return self.lifecycle.finish_without_running(cached)

    def _portable(self) -> tuple[Any, ...]:
        return (self.task, self.run, self.parameters, self.log_prints)

    def _adopt(self, outcome: tuple[TaskRun, State]) -> None:
        """Take over what a child process recorded, without recording it twice."""
        child_run, state = outcome
        for field in ("run_count", "start_time", "end_time", "cache_key"):
            setattr(self.run, field, getattr(child_run, field))
        self.lifecycle.adopt_final(state)


def _execute_in_subprocess(
    task: Any, run: TaskRun, parameters: dict[str, Any], log_prints: bool
) -> tuple[TaskRun, State]:
    """The body of a task run in a process-pool child: record, run, flush, report back."""
    configure_run_logging()
    recorder = get_recorder()
    engine = TaskRunEngine(task, run, parameters, recorder, log_prints)
    state = engine.execute()
    recorder.flush()
    try:
        dumps_or_explain(get_serializer("cloudpickle"), state.data, engine.lifecycle.label)
    except SerializationError as exc:
        state = Failed(f"{exc} It could not be sent back from the worker process.", data=exc)
    return run, state
