"""One run's life from start to end: states, retries, results, hooks and lifecycle logs.

Flow runs and task runs share this logic; ``drive_sync`` and ``drive_async`` are the two thin
drivers that call the user's function between the transitions.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from anabranch import _clock
from anabranch._engine import active, cancellation
from anabranch._engine.timeouts import call_with_timeout
from anabranch._engine.tracebacks import first_to_log, fold_engine_frames
from anabranch.exceptions import CancelledRun, CrashedRun, RunTimeoutError, SerializationError
from anabranch.results import ResultRef
from anabranch.results.storage import ResultStore, result_store, trust_result_storage
from anabranch.schemas import FlowRun, State, StateType, TaskRun
from anabranch.states import (
    AwaitingRetry,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Retrying,
    Running,
)


@dataclass
class RunOptions:
    """The options of a flow or task that shape how its runs behave."""

    retries: int = 0
    retry_delay_seconds: float | Sequence[float] = 0
    retry_jitter_factor: float | None = None
    retry_condition_fn: Callable[..., bool] | None = None
    timeout_seconds: float | None = None
    persist_result: bool | None = False
    result_storage: str | None = None
    result_serializer: str = "cloudpickle"
    on_completion: list[Callable[..., Any]] = field(default_factory=list)
    on_failure: list[Callable[..., Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Storage the user's own code names is storage this process may read results from
        # (a deployment's child writing to the same place, say).
        if self.result_storage is not None:
            trust_result_storage(self.result_storage)


_run_logs = logging.getLogger("anabranch")


class RunLifecycle:
    """Moves one run through its states and records every transition."""

    def __init__(
        self,
        owner: Any,
        run: FlowRun | TaskRun,
        options: RunOptions,
        record: Callable[[Any, State], None],
        make_logger: Callable[[], logging.LoggerAdapter],
        kind: str,
    ) -> None:
        self.owner = owner
        self.run = run
        self.options = options
        self._record = record
        self._make_logger = make_logger
        self._logger: logging.LoggerAdapter | None = None
        self.kind = kind
        self.cache_key: str | None = None
        self.cache_expiration: timedelta | None = None

    @property
    def logger(self) -> logging.LoggerAdapter:
        """Built on first use: most task runs never log anything."""
        if self._logger is None:
            self._logger = self._make_logger()
        return self._logger

    @property
    def label(self) -> str:
        return f"{self.kind} run {self.run.name!r}"

    def set_state(self, state: State) -> State:
        """Apply a transition; a run that is already final stays final (a crash wins)."""
        run = self.run
        current = run.state
        if current is not None and current.is_final():
            return current
        # Plain field writes: pydantic's __setattr__ costs more than the rest of a transition.
        fields = vars(run)
        if state.type is StateType.RUNNING:
            fields["run_count"] += 1
            if fields["start_time"] is None:
                fields["start_time"] = state.timestamp
        if state.is_final():
            fields["end_time"] = state.timestamp
            active.untrack(run.id)
        elif current is None:
            active.track(run.id, self)
        fields["state"] = state
        self._record(run, state)
        return state

    def start_attempt(self) -> None:
        self.set_state(Running() if self.run.run_count == 0 else Retrying())

    def succeed(self, value: Any) -> State:
        try:
            ref = self._persist(value)
        except SerializationError as exc:
            return self._finish_failed(exc, Failed(str(exc), data=exc))
        state = self.set_state(Completed(data=value, result_ref=ref))
        self._after_final(state)
        return state

    def fail(self, exc: Exception) -> float | None:
        """Record a failed attempt: the delay before the retry, or None when it is final."""
        if self.run.run_count <= self.options.retries and self._should_retry(exc):
            delay = self._retry_delay()
            self.logger.warning(
                "Encountered exception during execution (%s: %s); retry %d/%d in %gs.",
                type(exc).__name__, exc, self.run.run_count, self.options.retries, delay,
            )
            self.set_state(
                AwaitingRetry(
                    f"Retry {self.run.run_count} of {self.options.retries} after "
                    f"{type(exc).__name__}: {exc}"
                )
            )
            return delay
        if isinstance(exc, RunTimeoutError):
            final = Failed(str(exc), name="TimedOut", data=exc)
        else:
            final = Failed(
                f"{self.label} failed with {type(exc).__name__}: {exc}", data=exc
            )
        self._finish_failed(exc, final)
        return None

    def finish_without_running(self, state: State) -> State:
        """End a run without executing it (an upstream failed, or a cache hit)."""
        self.set_state(state)
        self._after_final(state)
        return state

    def adopt_final(self, state: State) -> None:
        """Take a final state another process already recorded for this run."""
        self.run.state = state
        active.untrack(self.run.id)

    def crash(self, exc: BaseException) -> None:
        self.crash_with_message(
            f"{self.label} was interrupted by {type(exc).__name__}; its process stopped it."
        )

    def crash_with_message(self, message: str) -> None:
        """End the run Crashed; Cancelled instead when the process is stopping because its
        root run was cancelled (the interruption is that cancellation)."""
        if cancellation.requested():
            message = "The run was cancelled."
            self.set_state(Cancelled(message, data=CancelledRun(message)))
            return
        self.set_state(Crashed(message, data=CrashedRun(message)))

    def _finish_failed(self, exc: Exception, state: State) -> State:
        fold_engine_frames(exc)
        if first_to_log(exc):
            self.logger.error("%s", state.message, exc_info=(type(exc), exc, exc.__traceback__))
        else:
            self.logger.error("%s (its traceback is logged above, by the run it came from)",
                              state.message)
        state = self.set_state(state)
        self._after_final(state)
        return state

    def _should_retry(self, exc: Exception) -> bool:
        condition = self.options.retry_condition_fn
        if condition is None:
            return True
        probe = Failed(f"{type(exc).__name__}: {exc}", data=exc)
        try:
            return bool(condition(self.owner, self.run, probe))
        except Exception as hook_error:
            self.logger.error("retry_condition_fn raised %r; not retrying.", hook_error)
            return False

    def _retry_delay(self) -> float:
        delays = self.options.retry_delay_seconds
        attempt = self.run.run_count - 1
        if isinstance(delays, (int, float)):
            delay = float(delays)
        elif delays:
            delay = float(delays[min(attempt, len(delays) - 1)])
        else:
            delay = 0.0
        jitter = self.options.retry_jitter_factor
        if jitter:
            delay = random.uniform(delay, delay * (1 + jitter))
        return delay

    def _persist(self, value: Any) -> ResultRef | None:
        """Write the result when asked to (or to serve a cache key). ``persist_result=None``
        means "persist if possible": a value that cannot be serialized is kept in memory."""
        options = self.options
        if options.persist_result is False and not self.cache_key:
            return None
        if options.persist_result is None and not self.cache_key:
            try:
                return self._write_result(value)
            except SerializationError as exc:
                self.logger.warning("Result not persisted: %s", exc)
                return None
        return self._write_result(value)

    def _write_result(self, value: Any) -> ResultRef:
        options = self.options
        store: ResultStore = result_store(options.result_storage)
        expires: datetime | None = None
        if self.cache_key and self.cache_expiration is not None:
            expires = _clock.now() + self.cache_expiration
        return store.write(
            value,
            key=self.cache_key or self.run.id.hex,
            serializer=options.result_serializer,
            owner=self.label,
            expires=expires,
        )

    def _after_final(self, state: State) -> None:
        if state.is_completed():
            if _run_logs.isEnabledFor(self._finished_level):
                self.logger.log(self._finished_level, "Finished in state %s", state)
            hooks = self.options.on_completion
        else:
            hooks = self.options.on_failure
        for hook in hooks:
            try:
                hook(self.owner, self.run, state)
            except Exception:
                self.logger.exception("Hook %r raised; the run's state is unchanged.", hook)

    @property
    def _finished_level(self) -> int:
        return logging.INFO if self.kind == "Flow" else logging.DEBUG


def drive_sync(lifecycle: RunLifecycle, call: Callable[[], Any]) -> State:
    """Attempt the run until it completes, runs out of retries, or is interrupted."""
    while True:
        lifecycle.start_attempt()
        try:
            value = call_with_timeout(call, lifecycle.options.timeout_seconds, lifecycle.label)
        except Exception as exc:
            delay = lifecycle.fail(exc)
            if delay is None:
                break
            _clock.sleep(delay)
        except BaseException as exc:
            lifecycle.crash(exc)
            raise
        else:
            lifecycle.succeed(value)
            break
    assert lifecycle.run.state is not None
    return lifecycle.run.state


async def drive_async(lifecycle: RunLifecycle, call: Callable[[], Awaitable[Any]]) -> State:
    """The asyncio twin of ``drive_sync``: the same lifecycle, awaiting the body."""
    timeout = lifecycle.options.timeout_seconds
    while True:
        lifecycle.start_attempt()
        try:
            value = await asyncio.wait_for(call(), timeout)
        except Exception as exc:
            if timeout is not None and isinstance(exc, asyncio.TimeoutError):
                exc = RunTimeoutError(f"{lifecycle.label} exceeded its timeout of {timeout:g} s.")
            delay = lifecycle.fail(exc)
            if delay is None:
                break
            await _clock.sleep_async(delay)
        except BaseException as exc:
            lifecycle.crash(exc)
            raise
        else:
            lifecycle.succeed(value)
            break
    assert lifecycle.run.state is not None
    return lifecycle.run.state
