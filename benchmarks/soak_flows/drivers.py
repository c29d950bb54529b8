"""The soak's driver processes: each runs one kind of flow in a loop until told to stop, and
prints, per flow call, one JSON line naming every run that call created and the state it
saw each one end in, so the soak can hold the database to it afterwards.

Usage (the soak starts these; ANABRANCH_API_URL and ANABRANCH_HOME come from it):
    python benchmarks/soak_flows/drivers.py --kind tasks --stop-file F [--pause 1]

Kinds:

- ``tasks``: a flow submitting ``--n`` (200) no-op tasks to a ThreadPoolTaskRunner(10);
- ``subflows``: a flow submitting ``--n`` (20) subflows, each running one task;
- ``limited``: a flow submitting ``--n`` (50) tasks tagged ``soak-db`` (a limit of 4 slots),
  each sleeping 10 ms while it holds its slot;
- ``deployments``: a flow whose ``--n`` (3) tasks each call ``run_deployment`` of the
  deployed ``soak-child/soak`` with an idempotency key of the driver's own, so a child can
  be found in the database even when the call creating it never answered.

Every id comes from a future (``future.run.id``), so runs that were created but never ran
are counted too (a submit that raises returns no future: its run, if it was recorded, is
found by the soak among the database's unfinished runs); the flow's own id is noted by its
body. Lines look like ``{"kind": ..., "i": 3, "flow": {"id": ..., "state": "COMPLETED"},
"subflows": {id: state}, "tasks": {state: [ids]}, "children": [{"key", "id", "state",
"error"}], "error": null}``; the last line is ``{"done": true, ...}`` once the recorder has
flushed. SIGUSR1 dumps every thread's stack to stderr (for a driver that hangs).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from anabranch import flow, task
from anabranch.client.recorder import flush_all
from anabranch.context import FlowRunContext
from anabranch.deployments import run_deployment
from anabranch.futures import AnabranchFuture
from anabranch.task_runners import ThreadPoolTaskRunner

LIMIT_TAG = "soak-db"
CHILD_DEPLOYMENT = "soak-child/soak"
# A child that never ends (a lost record) must not hang the driver past the soak's drain.
CHILD_TIMEOUT_S = 300.0


class Created:
    """What the current flow call created: filled by the flow bodies (several threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.flow_id: str | None = None
        self.futures: list[AnabranchFuture[Any]] = []
        self.subflows: list[AnabranchFuture[Any]] = []
        self.children: list[dict[str, Any]] = []

    def track(self, futures: Iterable[AnabranchFuture[Any]], *, subflows: bool = False) -> list[
        AnabranchFuture[Any]
    ]:
        kept = []
        for future in futures:  # noted one by one: a submit that raises leaves the rest known
            with self.lock:
                (self.subflows if subflows else self.futures).append(future)
            kept.append(future)
        return kept

    def note_flow(self) -> None:
        ctx = FlowRunContext.get()
        if ctx is not None:
            self.flow_id = str(ctx.flow_run.id)


CREATED = Created()


def _state(future: AnabranchFuture[Any]) -> str:
    try:
        return future.state.type.value
    except Exception as exc:  # no state at all is itself worth seeing
        return f"UNKNOWN:{type(exc).__name__}"


@task(name="soak-noop")
def noop(i: int) -> int:
    return i


@task(name="soak-limited", tags=[LIMIT_TAG])
def limited(i: int) -> int:
    time.sleep(0.01)
    return i


@task(name="soak-launch")
def launch(i: int, key: str) -> str:
    child: dict[str, Any] = {"key": key, "id": None, "state": None, "error": None}
    with CREATED.lock:
        CREATED.children.append(child)
    try:
        run = run_deployment(
            name=CHILD_DEPLOYMENT, parameters={"i": i}, idempotency_key=key,
            raise_on_failure=False, poll_interval=2, timeout=CHILD_TIMEOUT_S,
        )
    except Exception as exc:
        # Whether the child exists then depends on where the call failed: the key tells.
        child["error"] = f"{type(exc).__name__}: {exc}"[:300]
        raise
    child["id"] = str(run.id)
    child["state"] = run.state.type.value if run.state is not None else None
    return str(child["state"])


@flow(name="soak-tasks", task_runner=ThreadPoolTaskRunner(max_workers=10))
def soak_tasks(n: int = 200) -> int:
    CREATED.note_flow()
    futures = CREATED.track(noop.submit(i) for i in range(n))
    return sum(f.result() for f in futures)


@flow(name="soak-leaf")
def soak_leaf(i: int) -> int:
    (future,) = CREATED.track([noop.submit(i)])
    return future.result()


@flow(name="soak-subflows", task_runner=ThreadPoolTaskRunner(max_workers=5))
def soak_subflows(n: int = 20) -> int:
    CREATED.note_flow()
    futures = CREATED.track((soak_leaf.submit(i) for i in range(n)), subflows=True)
    return sum(f.result() for f in futures)


@flow(name="soak-limited", task_runner=ThreadPoolTaskRunner(max_workers=10))
def soak_limited(n: int = 50) -> int:
    CREATED.note_flow()
    futures = CREATED.track(limited.submit(i) for i in range(n))
    return sum(f.result() for f in futures)


@flow(name="soak-deployments", task_runner=ThreadPoolTaskRunner(max_workers=3))
def soak_deployments(n: int = 3) -> list[str]:
    CREATED.note_flow()
    keys = [f"soak-{uuid.uuid4()}" for _ in range(n)]
    futures = CREATED.track(launch.submit(i, key) for i, key in enumerate(keys))
    return [f.result() for f in futures]


KINDS: dict[str, tuple[Callable[..., Any], int]] = {
    "tasks": (soak_tasks, 200),
    "subflows": (soak_subflows, 20),
    "limited": (soak_limited, 50),
    "deployments": (soak_deployments, 3),
}


def one_call(kind: str, index: int, n: int) -> dict[str, Any]:
    """Run the flow once and describe every run it created, as its futures saw them end."""
    global CREATED
    CREATED = Created()
    fn, _ = KINDS[kind]
    started = time.time()
    error = None
    flow_state = None
    try:
        state = fn(n, return_state=True)
        flow_state = state.type.value
    except BaseException as exc:  # noqa: BLE001 - any way a call ends is a figure
        error = f"{type(exc).__name__}: {exc}"[:500]
        if isinstance(exc, KeyboardInterrupt):
            raise
    tasks: dict[str, list[str]] = {}
    for future in CREATED.futures:
        tasks.setdefault(_state(future), []).append(str(future.run.id))
    return {
        "kind": kind,
        "i": index,
        "t": started,
        "seconds": round(time.time() - started, 3),
        "flow": {"id": CREATED.flow_id, "state": flow_state},
        "subflows": {str(f.run.id): _state(f) for f in CREATED.subflows},
        "tasks": tasks,
        "children": CREATED.children,
        "error": error,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=list(KINDS), required=True)
    parser.add_argument("--n", type=int, default=None, help="runs per flow call")
    parser.add_argument("--stop-file", type=Path, required=True)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between calls")
    args = parser.parse_args(argv)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    n = args.n or KINDS[args.kind][1]
    index = 0
    while not args.stop_file.exists():
        print(json.dumps(one_call(args.kind, index, n)), flush=True)
        index += 1
        if args.stop_file.exists():
            break
        time.sleep(args.pause)
    started = time.monotonic()
    flush_all(timeout=None)
    print(json.dumps({"done": True, "kind": args.kind, "calls": index,
                      "flush_seconds": round(time.monotonic() - started, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
