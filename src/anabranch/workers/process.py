"""Starting and stopping the subprocess that carries out one flow run.

The child runs ``python -m anabranch.deployments.execute RUN_ID`` with the deployment's job
variables: ``python`` (the interpreter, so a deployment can run in its own virtual
environment), ``working_dir``, and ``env`` (extra environment variables). It gets a session
of its own, so a Ctrl-C meant for the worker does not reach it; and it stops when the worker
dies (see anabranch.deployments.execute), so a killed worker leaves no orphan unwatched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from anabranch.exceptions import AnabranchError

# The child learns its worker's pid from this variable, to stop if that worker dies, and
# its worker's name, to claim the run only while it is still that worker's.
WORKER_PID_VARIABLE = "ANABRANCH_WORKER_PID"
WORKER_NAME_VARIABLE = "ANABRANCH_WORKER_NAME"


def child_command(flow_run_id: uuid.UUID, job_variables: Mapping[str, Any]) -> list[str]:
    python = str(job_variables.get("python") or sys.executable)
    return [python, "-m", "anabranch.deployments.execute", str(flow_run_id)]


def child_environment(
    flow_run_id: uuid.UUID, job_variables: Mapping[str, Any], worker_name: str | None = None
) -> dict[str, str]:
    extra = job_variables.get("env") or {}
    if not isinstance(extra, Mapping):
        raise AnabranchError(
            f"Job variable 'env' must be a mapping of environment variables, not {extra!r}."
        )
    env = {**os.environ, **{str(k): str(v) for k, v in extra.items()}}
    env["ANABRANCH_FLOW_RUN_ID"] = str(flow_run_id)
    env[WORKER_PID_VARIABLE] = str(os.getpid())
    if worker_name is not None:
        env[WORKER_NAME_VARIABLE] = worker_name
    return env


def start(
    flow_run_id: uuid.UUID, job_variables: Mapping[str, Any], worker_name: str | None = None
) -> subprocess.Popen[bytes]:
    """Start the child for a flow run. (No preexec_fn: in a process with threads the child
    could deadlock before exec; the child arranges its parent-death signal itself.)"""
    working_dir = job_variables.get("working_dir") or None
    try:
        return subprocess.Popen(
            child_command(flow_run_id, job_variables),
            cwd=working_dir,
            env=child_environment(flow_run_id, job_variables, worker_name),
            start_new_session=True,
        )
    except OSError as exc:
        raise AnabranchError(
            f"Could not start the process for flow run {flow_run_id}: {exc}. Check the "
            "deployment's job variables 'python' and 'working_dir'."
        ) from exc


def stop(process: subprocess.Popen[bytes], grace_seconds: float) -> None:
    """SIGTERM the child's process group now, SIGKILL it after ``grace_seconds`` if it is
    still there (without blocking the caller)."""
    _signal_group(process, signal.SIGTERM)

    def kill_if_still_running() -> None:
        try:
            process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)

    threading.Thread(target=kill_if_still_running, daemon=True).start()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended by itself
        os.killpg(process.pid, signum)
