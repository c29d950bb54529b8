"""An idle worker stops promptly on SIGTERM: its poll for work is short (a long poll that
work ends at once), so `docker stop` or a service manager never waits for it."""

from __future__ import annotations

import signal
import subprocess
import time

from anabranch.testing import wait_until


def test_an_idle_worker_stops_within_a_second_or_so_of_sigterm(platform, client) -> None:
    client.create_work_pool("idle")
    worker = platform.start_worker("idle")
    wait_until(lambda: client.read_workers("idle"), timeout=60, what="the worker's first poll")
    stopping = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    try:
        code = worker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError("the idle worker was still running 10 s after SIGTERM") from None
    took = time.monotonic() - stopping
    assert code == 0
    # One poll (0.8 s) and the exit; the bound is loose for a busy machine, and far below
    # the 5 s an idle poll used to hold.
    assert took < 3.0, f"the idle worker took {took:.1f} s to stop"
    assert "stopped" in platform.worker_logs()
