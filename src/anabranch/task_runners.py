"""Task runners: where submitted task runs and subflow runs execute, and how many at once.

``max_workers`` is a hard cap on the runs of one flow run executing at once. A run that waits
on another run's result does not deadlock a bounded runner: if the awaited run has not started
and the waiter is one of the same runner's workers, the waiter runs it inline in its own
thread (its worker is blocked anyway), so progress never needs a free worker.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from anabranch.results.serializers import get_serializer

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

_thread_state = threading.local()


def current_worker_runner() -> TaskRunner | None:
    """The runner whose worker the calling thread is, if any."""
    return getattr(_thread_state, "runner", None)


def bind_worker_runner(runner: TaskRunner | None) -> None:
    """Let a helper thread stand in for a worker (used by timeouts running a body aside)."""
    _thread_state.runner = runner


def default_max_workers() -> int:
    """Bounded, unlike an unbounded default that exhausts threads on large fan-outs."""
    return min(32, (os.cpu_count() or 1) + 4)


class WorkItem:
    """One submitted unit of work: claimed exactly once, by a worker or by an inline waiter."""

    __slots__ = ("_work", "owner", "_claimed", "_claim_lock", "_finished", "_is_done", "_callbacks")

    def __init__(self, work: Callable[[], None], owner: TaskRunner | None) -> None:
        self._work = work
        self.owner = owner
        self._claimed = False
        self._claim_lock = threading.Lock()
        # Held until the item is done; waiters acquire and release it (cheaper than an Event).
        self._finished = threading.Lock()
        self._finished.acquire()
        self._is_done = False
        self._callbacks: list[Callable[[WorkItem], None]] = []

    def claim(self) -> bool:
        with self._claim_lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    @property
    def started(self) -> bool:
        return self._claimed

    def run(self) -> None:
        try:
            self._work()
        finally:
            self._finish()

    def discard(self) -> bool:
        """Mark a never-started item done without running it; False if it already started."""
        if not self.claim():
            return False
        self._finish()
        return True

    def _finish(self) -> None:
        with self._claim_lock:
            self._is_done = True
            callbacks, self._callbacks = self._callbacks, []
        self._finished.release()
        for callback in callbacks:
            callback(self)

    def done(self) -> bool:
        return self._is_done

    def wait(self, timeout: float | None = None) -> bool:
        if self._is_done:
            return True
        if self.owner is not None and current_worker_runner() is self.owner and self.claim():
            self.run()
            return True
        if self._finished.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            self._finished.release()
            return True
        return False

    def add_done_callback(self, callback: Callable[[WorkItem], None]) -> None:
        with self._claim_lock:
            if not self._is_done:
                self._callbacks.append(callback)
                return
        callback(self)


class TaskRunner:
    """Base of the runners: a queue of work items served by at most ``max_workers`` threads."""

    runs_in_subprocesses = False

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}.")
        self.max_workers = max_workers or default_max_workers()
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        # Same lock, own waiters: shutdown waits here, so a notify meant for a worker never
        # wakes it instead.
        self._all_queued = threading.Condition(lock)
        self._queue: collections.deque[WorkItem] = collections.deque()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._running = 0
        self._closing = False
        # Items prepared but not queued yet (waiting for concurrency slots); shutdown waits
        # for them, so a flow never ends with a submitted run still to start.
        self._prepared = 0

    def duplicate(self) -> TaskRunner:
        """A fresh runner with the same settings; each flow run gets its own."""
        return type(self)(max_workers=self.max_workers)

    def __enter__(self) -> TaskRunner:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        interrupted = exc_info[0] is not None and not issubclass(exc_info[0], Exception)
        if interrupted:
            self.discard_pending()
        self.shutdown(wait=not interrupted)

    def submit(self, work: Callable[[], None]) -> WorkItem:
        """Queue ``work``; it runs on one of the runner's threads (or inline in a waiter)."""
        item = self.prepare(work)
        self.enqueue(item)
        return item

    def prepare(self, work: Callable[[], None]) -> WorkItem:
        """An item for ``work`` that is not queued yet (it may wait for concurrency slots
        first); a waiter on it can still run it inline. Every prepared item must be enqueued."""
        with self._cond:
            if self._closing:
                raise RuntimeError("This task runner has shut down; submit from a running flow.")
            self._prepared += 1
        return WorkItem(work, self)

    def enqueue(self, item: WorkItem) -> None:
        with self._cond:
            self._prepared -= 1
            if self._prepared == 0:
                self._all_queued.notify_all()
            self._queue.append(item)
            if len(self._queue) > self._idle and len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._serve,
                    name=f"anabranch-worker-{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._cond.notify()

    def _serve(self) -> None:
        bind_worker_runner(self)
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                if not self._queue:
                    return
                item = self._queue.popleft()
            if item.claim():
                with self._cond:
                    self._running += 1
                try:
                    item.run()
                finally:
                    with self._cond:
                        self._running -= 1

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking work; with ``wait``, return once every submitted item has finished."""
        with self._cond:
            while wait and self._prepared:
                self._all_queued.wait()
            self._closing = True
            self._cond.notify_all()
            threads = list(self._threads)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    def discard_pending(self) -> list[WorkItem]:
        """Take every not-yet-started item off the queue (used when a flow run crashes)."""
        with self._cond:
            queued, self._queue = list(self._queue), collections.deque()
        return [item for item in queued if item.discard()]

    def statistics(self) -> dict[str, int]:
        """What the runner is doing now: its cap, threads, items executing and queued."""
        with self._cond:
            return {
                "max_workers": self.max_workers,
                "threads": len(self._threads),
                "executing": self._running,
                "queued": sum(1 for item in self._queue if not item.started),
            }

    def execute(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a task body; thread runners call it in the worker, process runners ship it."""
        return fn(*args)


class ThreadPoolTaskRunner(TaskRunner):
    """Runs submitted work in up to ``max_workers`` threads; best for I/O-bound work."""


class ProcessPoolTaskRunner(TaskRunner):
    """Runs task bodies in up to ``max_workers`` child processes; best for CPU-bound work.

    Functions, arguments and results cross with cloudpickle. Each child records its task
    runs' states and logs to the same store, so start/end times are the child's own.
    """

    runs_in_subprocesses = True

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(max_workers or os.cpu_count() or 1)
        self._executor: ProcessPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def _pool(self) -> ProcessPoolExecutor:
        # Imported here: multiprocessing costs ~8 ms, which only process pools should pay.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with self._executor_lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.max_workers, mp_context=multiprocessing.get_context("spawn")
                )
            return self._executor

    def execute(self, fn: Callable[..., Any], *args: Any) -> Any:
        pickler = get_serializer("cloudpickle")
        blob = pickler.dumps((fn, args))
        pool = self._pool()
        try:
            return pickler.loads(pool.submit(_run_pickled, blob).result())
        except BaseException:
            if getattr(pool, "_broken", False):
                with self._executor_lock:
                    if self._executor is pool:
                        self._executor = None
            raise

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=not wait)


def _run_pickled(blob: bytes) -> bytes:
    pickler = get_serializer("cloudpickle")
    fn, args = pickler.loads(blob)
    return pickler.dumps(fn(*args))
