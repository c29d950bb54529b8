"""A process-wide signal that runs changed, so long waits in this process wake at once
instead of at their next look at the database: a worker's poll or a run_deployment waiting
on an embedded store, and the server's long polls (which subscribe)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable

Listener = Callable[[frozenset[uuid.UUID], bool], None]


class Changes:
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0
        self._listeners: list[Listener] = []

    def notify(self, ended: Iterable[uuid.UUID] = (), *, work: bool = True) -> None:
        """Flow runs ``ended`` (reached a final state), and, with ``work``, something a
        worker may act on changed (a run was created, cancelled, or freed its slots)."""
        ids = frozenset(ended)
        with self._condition:
            self._generation += 1
            self._condition.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            listener(ids, work)

    def wait(self, timeout: float) -> None:
        """Return after ``timeout`` seconds, or sooner when notify() is called."""
        with self._condition:
            generation = self._generation
            self._condition.wait_for(lambda: self._generation != generation, timeout)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(ended, work)`` on every notify (from the notifying thread);
        returns the function that unsubscribes it."""
        with self._condition:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._condition:
                self._listeners.remove(listener)

        return unsubscribe


changes = Changes()
