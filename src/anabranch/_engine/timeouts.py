"""Run a synchronous body with a time limit.

The body runs in a helper thread while the caller waits; when the limit passes the caller
raises RunTimeoutError at once and the body's thread gets an asynchronous exception, so it
stops at its next Python instruction instead of running on unbounded.
"""

from __future__ import annotations

import contextvars
import ctypes
import threading
from collections.abc import Callable
from typing import Any

from anabranch.exceptions import RunTimeoutError
from anabranch.task_runners import bind_worker_runner, current_worker_runner


class _StopBody(BaseException):
    """Injected into a timed-out body's thread; BaseException so user code rarely catches it."""


def call_with_timeout(fn: Callable[[], Any], timeout: float | None, what: str) -> Any:
    if timeout is None:
        return fn()
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()
    runner = current_worker_runner()

    def body() -> None:
        bind_worker_runner(runner)
        try:
            outcome["value"] = context.run(fn)
        except _StopBody:
            pass
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=body, name=f"anabranch-timed-{what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident or 0), ctypes.py_object(_StopBody)
        )
        raise RunTimeoutError(f"{what} exceeded its timeout of {timeout:g} s and was stopped.")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
