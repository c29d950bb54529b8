"""ProcessWorker: takes its pool's due runs and runs each in a subprocess.

One loop does everything that talks to the store in order: a long poll that is at once the
worker's heartbeat, its running runs' heartbeat, the request for new runs (as many as its
own limit leaves room for; the server applies the pool's, queues' and deployments' limits
across every worker) and the news of which of its runs were asked to cancel. Each child has
a watcher thread that reports its exit, so a crash is recorded with its exit code at once.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Sequence
from types import FrameType

from anabranch import _clock
from anabranch.client import get_client, upkeep
from anabranch.exceptions import ObjectNotFound
from anabranch.schemas.concurrency import MAX_STORED_INT
from anabranch.schemas.deployments import DispatchedRun, WorkerPoll
from anabranch.settings import get_settings
from anabranch.workers import process

logger = logging.getLogger("anabranch.worker")

# How long one poll may wait for work (a long poll: work that arrives ends it at once). A
# stopping worker waits for its poll to end, so this bounds how long an idle worker takes to
# stop on Ctrl-C or SIGTERM; with runs going it also lets the worker's own limit free
# promptly as children exit.
POLL_SECONDS = 0.8
# A worker that can not reach the store waits at most this long between attempts.
MAX_BACKOFF_SECONDS = 15.0
# Without a limit of its own, a worker asks for at most this many runs per poll (it polls
# again at once when it got some): starting dozens of interpreters together only slows each.
UNLIMITED_BATCH = max(2, os.cpu_count() or 2)


class ProcessWorker:
    """A worker for ``work_pool_name`` (or, with ``deployment_ids`` and no pool, a ``serve``
    process for those deployments).

    ``limit`` caps this worker's simultaneous runs. On Ctrl-C or SIGTERM it stops taking
    work; running children finish, unless ``cancel_on_exit`` (or a second Ctrl-C), which
    cancels them: SIGTERM, then SIGKILL after ``grace_seconds``.
    """

    def __init__(
        self,
        work_pool_name: str | None,
        *,
        work_queue_names: Sequence[str] = (),
        limit: int | None = None,
        name: str | None = None,
        deployment_ids: Sequence[uuid.UUID] = (),
        cancel_on_exit: bool = False,
        grace_seconds: float = 10.0,
    ) -> None:
        if limit is not None and not 1 <= limit <= MAX_STORED_INT:
            raise ValueError(
                f"A worker's limit is 1 or more and at most {MAX_STORED_INT:,} runs at once, "
                f"not {limit:,}; leave it None for no limit."
            )
        if work_pool_name is None and not deployment_ids:
            raise ValueError("A worker needs a work pool (or deployments to serve).")
        self.work_pool_name = work_pool_name
        self.work_queue_names = list(work_queue_names)
        self.limit = limit
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.deployment_ids = list(deployment_ids)
        self.cancel_on_exit = cancel_on_exit
        self.grace_seconds = grace_seconds
        self._client = get_client()
        # With no server (the embedded store), workers run the scheduler's ticks.
        settings = get_settings()
        self._ticks_schedules = not settings.api_url
        self._tick_every = settings.scheduler_seconds
        self._next_tick = 0.0
        self._children: dict[uuid.UUID, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._child_exited = threading.Event()
        self._stopping = threading.Event()
        self._interrupts = 0
        # While polls fail (a server restarting): how long to wait before the next one.
        self._backoff: _clock.Backoff | None = None
        self._returned: list[uuid.UUID] = []

    def run(self) -> None:
        """Work until stopped (Ctrl-C, SIGTERM or stop()); then wait for or cancel children."""
        restore = self._install_signal_handlers()
        logger.info("Worker %r started for %s", self.name, self._source())
        try:
            while not self._stopping.is_set():
                self._poll_once()
        finally:
            self._finish_children()
            self._give_back()
            restore()
            logger.info("Worker %r stopped", self.name)

    def stop(self) -> None:
        """Stop taking work (safe from any thread)."""
        self._stopping.set()

    def running(self) -> list[uuid.UUID]:
        with self._lock:
            return list(self._children)

    def _poll_once(self) -> None:
        self._tick_schedules()
        self._crash_dead_runs()
        running = self.running()
        room = (self.limit - len(running)) if self.limit is not None else UNLIMITED_BATCH
        poll = WorkerPoll(
            worker_name=self.name,
            work_queue_names=self.work_queue_names,
            deployment_ids=self.deployment_ids,
            limit=max(room, 0),
            worker_limit=self.limit,
            wait=POLL_SECONDS,
            running=running,
        )
        try:
            answer = self._client.poll_work(self.work_pool_name, poll)
        except ObjectNotFound as exc:
            # The pool was deleted: nothing will ever come; say so and stop.
            logger.error("Worker %r stopping: %s", self.name, exc)
            self.stop()
            return
        except Exception as exc:
            # A server that is restarting: keep the children, try again after a back-off.
            self._backoff = self._backoff or _clock.Backoff(
                math.inf, first=POLL_SECONDS, ceiling=MAX_BACKOFF_SECONDS
            )
            delay = self._backoff.next_delay()
            assert delay is not None  # Invariant: a back-off without a budget never runs out
            logger.warning("Worker %r could not poll (retry in %g s): %s", self.name, delay, exc)
            self._stopping.wait(delay)
            return
        self._backoff = None
        for dispatched in answer.runs:
            if self._stopping.is_set():
                # Handed over while we were stopping: it goes back, unstarted.
                self._returned.append(dispatched.flow_run.id)
            else:
                self._start(dispatched)
        for run_id in answer.cancelling:
            self._cancel(run_id)

    def _crash_dead_runs(self) -> None:
        """On the embedded store, no server finds the runs whose process died: workers do."""
        try:
            crashed = upkeep.crash_dead_runs()
        except Exception as exc:
            logger.warning("Worker %r could not look for dead runs: %s", self.name, exc)
            return
        if crashed:
            logger.warning("Crashed %d flow run(s) without heartbeat: %s", len(crashed), crashed)

    def _tick_schedules(self) -> None:
        if not self._ticks_schedules or _clock.monotonic() < self._next_tick:
            return
        self._next_tick = _clock.monotonic() + self._tick_every
        try:
            self._client.schedule_runs()
        except Exception as exc:
            logger.warning("Worker %r could not schedule runs: %s", self.name, exc)

    def _start(self, dispatched: DispatchedRun) -> None:
        run = dispatched.flow_run
        try:
            child = process.start(run.id, dispatched.job_variables, self.name)
        except Exception as exc:
            logger.error("Worker %r could not start flow run %s: %s", self.name, run.id, exc)
            self._client.report_process_exit(run.id, -1, worker_name=self.name)
            return
        logger.info(
            "Worker %r started flow run %r (%s) of %r in process %d",
            self.name, run.name, run.id, dispatched.deployment.full_name, child.pid,
        )
        with self._lock:
            self._children[run.id] = child
        threading.Thread(
            target=self._watch, args=(run.id, child), name=f"anabranch-watch-{child.pid}",
            daemon=True,
        ).start()

    def _watch(self, run_id: uuid.UUID, child: subprocess.Popen[bytes]) -> None:
        exit_code = child.wait()
        try:
            self._client.report_process_exit(run_id, exit_code, worker_name=self.name)
        except Exception as exc:
            # The server's zombie detection ends the run when its heartbeat stops.
            logger.warning("Could not report the exit of flow run %s: %s", run_id, exc)
        with self._lock:
            self._children.pop(run_id, None)
        self._child_exited.set()

    def _cancel(self, run_id: uuid.UUID) -> None:
        with self._lock:
            child = self._children.get(run_id)
        if child is not None:
            logger.info("Worker %r cancelling flow run %s", self.name, run_id)
            process.stop(child, self.grace_seconds)

    def _finish_children(self) -> None:
        if self.cancel_on_exit:
            self._cancel_all()
        while True:
            running = self.running()
            if not running:
                return
            logger.info(
                "Worker %r waiting for %d running flow run(s); Ctrl-C again cancels them",
                self.name, len(running),
            )
            self._child_exited.clear()
            self._heartbeat_until_one_exits(running)

    def _give_back(self) -> None:
        if not self._returned:
            return
        poll = WorkerPoll(
            worker_name=self.name, deployment_ids=self.deployment_ids, limit=0,
            returned=self._returned,
        )
        try:
            self._client.poll_work(self.work_pool_name, poll)
        except Exception as exc:
            # Zombie detection puts them back once this worker's heartbeat is gone.
            logger.warning("Worker %r could not give back %s: %s", self.name, self._returned, exc)
        self._returned = []

    def _heartbeat_until_one_exits(self, running: list[uuid.UUID]) -> None:
        """Keep the children's runs alive in the store (and honour cancellations) while
        waiting for them to end, taking no new work."""
        while not self._child_exited.wait(POLL_SECONDS):
            poll = WorkerPoll(
                worker_name=self.name, deployment_ids=self.deployment_ids, limit=0,
                running=running, returned=self._returned,
            )
            try:
                answer = self._client.poll_work(self.work_pool_name, poll)
            except Exception as exc:
                logger.warning("Worker %r could not poll: %s", self.name, exc)
                continue
            self._returned = []
            for run_id in answer.cancelling:
                self._cancel(run_id)

    def _cancel_all(self) -> None:
        for run_id in self.running():
            try:
                self._client.cancel_flow_run(run_id)
            except Exception as exc:
                logger.warning("Could not mark flow run %s cancelled: %s", run_id, exc)
            self._cancel(run_id)

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def interrupted(signum: int, frame: FrameType | None) -> None:
            self._interrupts += 1
            if self._interrupts == 1 and not self.cancel_on_exit:
                logger.info("Worker %r stopping: no new runs; running ones finish", self.name)
            else:
                logger.info("Worker %r cancelling its running flow runs", self.name)
                self.cancel_on_exit = True
                threading.Thread(target=self._cancel_all, daemon=True).start()
            self.stop()

        previous = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def _source(self) -> str:
        if self.work_pool_name is not None:
            queues = ", ".join(self.work_queue_names)
            return f"work pool {self.work_pool_name!r}" + (f" (queues {queues})" if queues else "")
        return f"{len(self.deployment_ids)} served deployment(s)"
