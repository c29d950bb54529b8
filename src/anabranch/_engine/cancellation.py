"""Cancellation asked for from outside (`anabranch flow-run cancel`) of a flow run that this
process runs by itself, without a worker: the heartbeat thread notices its root run is
Cancelling and the process stops the way SIGTERM stops it, except that its runs end
Cancelled, not Crashed. (Under a worker, the worker terminates the process instead.)"""

from __future__ import annotations

import os
import signal
import threading

from anabranch._engine.signals import handles_termination

_requested = threading.Event()


def requested() -> bool:
    """Whether this process is stopping because one of its runs was cancelled."""
    return _requested.is_set()


def stop_for_cancellation() -> bool:
    """Stop this process's root flow run as cancelled; False when it can not be stopped
    from here (its flow does not run in the main thread, or the program handles SIGTERM)."""
    if not handles_termination():
        return False
    _requested.set()
    os.kill(os.getpid(), signal.SIGTERM)
    return True
