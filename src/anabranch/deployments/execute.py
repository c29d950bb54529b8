"""The child process of a worker: carry out one stored flow run of a deployment.

``python -m anabranch.deployments.execute FLOW_RUN_ID`` reads the run and its deployment from
the store the environment points at, imports the deployment's flow and runs it as that run:
the run's id, name, parent link and parameters are the stored ones, so the caller of
``run_deployment`` sees this very run finish with its result.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import signal
import sys
import uuid

from anabranch._engine.flow_engine import FlowRunEngine
from anabranch.client import get_client
from anabranch.client.recorder import get_recorder
from anabranch.deployments.entrypoints import load_flow
from anabranch.exceptions import AnabranchError
from anabranch.schemas import State
from anabranch.states import Failed
from anabranch.workers.process import WORKER_NAME_VARIABLE, WORKER_PID_VARIABLE

# prctl(PR_SET_PDEATHSIG, sig): the signal the kernel sends us when our parent dies.
_PR_SET_PDEATHSIG = 1


def execute(flow_run_id: uuid.UUID) -> State | None:
    """Run the stored flow run; its final state, or None if it was not this process's to
    run (cancelled, or handed to another worker, before this process could claim it)."""
    client = get_client()
    run = client.read_flow_run(flow_run_id)
    if run.deployment_id is None:
        raise AnabranchError(f"Flow run {flow_run_id} is not a run of a deployment.")
    worker_name = os.environ.get(WORKER_NAME_VARIABLE)
    if not client.claim_flow_run(run.id, process_id=os.getpid(), worker_name=worker_name):
        state = client.read_flow_run(run.id).state
        print(
            f"anabranch: flow run {run.name!r} is {state.name if state else 'gone'} and not "
            "this process's to start any more; not starting it.",
            file=sys.stderr,
        )
        return None
    deployment = client.read_deployment(run.deployment_id)
    try:
        flow = load_flow(deployment.entrypoint)
        parameters = flow.validate(dict(run.parameters))
    except Exception as exc:
        # The run can not start: it fails saying why, rather than crashing unexplained.
        print(f"anabranch: flow run {run.name!r} can not start: {exc}", file=sys.stderr)
        state = Failed(message=f"Could not start: {type(exc).__name__}: {exc}")
        recorder = get_recorder()
        recorder.record_flow_run(run.model_copy(update={"state": state}), state)
        recorder.flush()
        return state
    engine = FlowRunEngine(flow, parameters, run)
    if flow.is_async:
        return asyncio.run(engine.run_async())
    return engine.run_sync()


def stop_with_worker() -> None:
    """Have the kernel send SIGTERM when the worker that started us dies (Linux), and stop
    now if it died before this line: a killed worker must not leave its runs going on,
    unwatched and beyond its pool's limits."""
    worker_pid = os.environ.get(WORKER_PID_VARIABLE)
    if worker_pid is None:
        return
    if sys.platform == "linux":
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(worker_pid):
        sys.exit("anabranch: the worker that started this flow run is gone; not starting it.")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m anabranch.deployments.execute FLOW_RUN_ID")
    stop_with_worker()
    state = execute(uuid.UUID(sys.argv[1]))
    sys.exit(0 if state is None or state.is_completed() else 1)


if __name__ == "__main__":
    main()
