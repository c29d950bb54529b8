"""Futures for submitted task runs and subflow runs, and ways to wait on many of them."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar

from anabranch import _clock
from anabranch.schemas import FlowRun, State, TaskRun
from anabranch.task_runners import WorkItem, current_worker_runner

R = TypeVar("R")


class AnabranchFuture(Generic[R]):
    """The eventual outcome of a submitted task run or subflow run."""

    def __init__(self, run: TaskRun | FlowRun, item: WorkItem) -> None:
        self._run = run
        self._item = item

    @property
    def task_run_id(self) -> uuid.UUID:
        return self._run.id

    @property
    def flow_run_id(self) -> uuid.UUID | None:
        return self._run.id if isinstance(self._run, FlowRun) else self._run.flow_run_id

    @property
    def run(self) -> TaskRun | FlowRun:
        return self._run

    @property
    def state(self) -> State:
        """The run's current state (Pending until it starts)."""
        assert self._run.state is not None
        return self._run.state

    def done(self) -> bool:
        return self._item.done()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the run is final or ``timeout`` seconds pass."""
        self._item.wait(timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """The run's return value; raises its exception if it failed (unless told not to)."""
        if not self._item.wait(timeout):
            raise TimeoutError(
                f"Run {self._run.name!r} did not finish within {timeout} s; it is still "
                f"{self.state.name}. Wait longer or check it with `anabranch flow-run inspect`."
            )
        return self.state.result(raise_on_failure=raise_on_failure)

    def add_done_callback(self, fn: Any) -> None:
        """Call ``fn(future)`` once the run is final."""
        self._item.add_done_callback(lambda _item: fn(self))

    def __repr__(self) -> str:
        return f"AnabranchFuture({self._run.name!r}, state={self.state.name})"


class AnabranchFutureList(list):
    """What ``.map()`` returns: a list of futures with helpers over all of them."""

    def wait(self, timeout: float | None = None) -> None:
        wait(self, timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[Any]:
        deadline = _clock.Deadline(timeout)
        return [
            f.result(timeout=deadline.remaining(), raise_on_failure=raise_on_failure)
            for f in self
        ]


class DoneAndNotDoneFutures(NamedTuple):
    done: set[AnabranchFuture[Any]]
    not_done: set[AnabranchFuture[Any]]


def wait(
    futures: Iterable[AnabranchFuture[Any]], timeout: float | None = None
) -> DoneAndNotDoneFutures:
    """Wait for all ``futures`` (or until ``timeout``); returns which are done and which not."""
    futures = list(futures)
    deadline = _clock.Deadline(timeout)
    for future in futures:
        future.wait(deadline.remaining())
    done = {f for f in futures if f.done()}
    return DoneAndNotDoneFutures(done, set(futures) - done)


def as_completed(
    futures: Iterable[AnabranchFuture[Any]], timeout: float | None = None
) -> Iterator[AnabranchFuture[Any]]:
    """Yield futures as their runs finish; raises TimeoutError if ``timeout`` runs out first.

    Inside a runner's worker, a not-yet-started run of the same runner is run inline when
    nothing else finished, so a bounded runner cannot deadlock here either.
    """
    pending = list(dict.fromkeys(futures))
    finished: queue.SimpleQueue[AnabranchFuture[Any]] = queue.SimpleQueue()
    for future in pending:
        future.add_done_callback(finished.put)
    deadline = _clock.Deadline(timeout)
    for _ in range(len(pending)):
        while True:
            try:
                yield finished.get_nowait()
                break
            except queue.Empty:
                pass
            if _run_one_inline(pending):
                continue
            if deadline.expired():
                raise TimeoutError(f"Not all {len(pending)} futures finished within {timeout} s.")
            try:
                yield finished.get(timeout=deadline.remaining())
                break
            except queue.Empty:
                continue


def _run_one_inline(pending: list[AnabranchFuture[Any]]) -> bool:
    runner = current_worker_runner()
    if runner is None:
        return False
    for future in pending:
        item = future._item
        if item.owner is runner and not item.started and item.claim():
            item.run()
            return True
    return False
