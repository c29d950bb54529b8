"""Dead runs are found without a server (G7): on the embedded SQLite store, a flow process
SIGKILLed while Running is marked Crashed by whichever other process uses the store (a
flow's heartbeat, a worker, the CLI's reads, run_deployment's wait), and its slot freed.

Heartbeats are every second here, so "a few heartbeat intervals" is a few seconds; the
bound is 60 s. The killed flow's slot lease lives 600 s, so only the crash can free it in
time, and the test reads the database with SQLAlchemy, never through anabranch, so its
own reads can not be what notices the dead run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
import uuid

import pytest

from anabranch.testing import wait_until
from faults.harness import ANABRANCH, FLOWS, Lab, Store

pytestmark = [pytest.mark.embedded_only, pytest.mark.timeout(240)]

FAST_HEARTBEAT = {"ANABRANCH_HEARTBEAT_SECONDS": "1"}
CRASH_BOUND_SECONDS = 60


def _home(lab: Lab) -> tuple[dict[str, str], Store]:
    home = lab.folder / "home"
    env = lab.env(home, **FAST_HEARTBEAT)
    return env, lab.store(f"sqlite:///{home / 'anabranch.db'}")


def _killed_while_holding_a_slot(lab: Lab, env: dict[str, str], store: Store) -> dict:
    """Run a flow whose task holds the only slot of "held", wait until the database shows
    it Running with the slot taken, SIGKILL it; its run ids."""
    lab.cli("concurrency-limit", "create", "held", "1", env=env)
    victim = lab.flow(
        "hold_slot.py", "--tag", "held", name="victim",
        env={**env, "ANABRANCH_CONCURRENCY_LEASE_SECONDS": "600"},
    )
    ids = json.loads(victim.wait_for("READY ").removeprefix("READY "))
    run_id = uuid.UUID(ids["flow_run_id"])

    def running_with_its_slot() -> bool:
        run = store.flow_run(run_id)
        return run is not None and run.state_type == "RUNNING" and store.slots_in_use("held")

    wait_until(running_with_its_slot, timeout=30, what="the victim Running with its slot")
    victim.kill()
    return {"flow_run_id": run_id, "task_run_id": uuid.UUID(ids["task_run_id"])}


def _crashed_and_freed(store: Store, ids: dict, killed_at: float, by: str) -> None:
    def crashed() -> bool:
        return store.flow_run(ids["flow_run_id"]).state_type == "CRASHED"

    try:
        wait_until(crashed, timeout=CRASH_BOUND_SECONDS, what="the killed flow run Crashed")
    except AssertionError:
        run = store.flow_run(ids["flow_run_id"])
        pytest.fail(
            f"{CRASH_BOUND_SECONDS} s after its process was SIGKILLed, with {by} using the "
            f"store, the flow run is still {run.state_type} (last heartbeat {run.heartbeat})."
        )
    print(f"crashed {time.monotonic() - killed_at:.1f} s after the kill, by {by}")
    (task_run,) = [run for run in store.task_runs() if run.id == ids["task_run_id"]]
    assert task_run.state_type in ("CRASHED", "FAILED"), task_run.state_type
    assert store.slots_in_use("held") == 0


def test_a_killed_flow_run_is_crashed_by_another_flow_that_heartbeats_and_its_slot_freed(
    lab: Lab,
) -> None:
    env, store = _home(lab)
    gate = lab.folder / "gate"
    bystander = lab.flow("bystander.py", "--gate", str(gate), env=env)
    bystander.wait_for("READY")

    ids = _killed_while_holding_a_slot(lab, env, store)
    killed_at = time.monotonic()

    _crashed_and_freed(store, ids, killed_at, by="another flow")
    gate.touch()
    assert bystander.finish(60, after="its gate opened") == 0, bystander.dump()


def test_a_killed_flow_run_is_crashed_by_a_worker_and_its_slot_freed(lab: Lab) -> None:
    env, store = _home(lab)
    lab.cli("work-pool", "create", "faults", env=env)
    worker = lab.process([ANABRANCH, "worker", "start", "--pool", "faults"], env=env,
                         name="worker")

    ids = _killed_while_holding_a_slot(lab, env, store)
    killed_at = time.monotonic()

    _crashed_and_freed(store, ids, killed_at, by="a worker")
    assert worker.process.poll() is None, worker.dump()


def test_a_killed_flow_run_is_crashed_by_the_cli_reading_runs_and_its_slot_freed(
    lab: Lab,
) -> None:
    env, store = _home(lab)
    ids = _killed_while_holding_a_slot(lab, env, store)
    killed_at = time.monotonic()
    shown: dict[str, str] = {}

    def listed_crashed() -> bool:
        runs = json.loads(lab.cli("flow-run", "ls", "--output", "json", env=env).stdout)
        shown.update({run["id"]: run["state"]["type"] for run in runs})
        return shown.get(str(ids["flow_run_id"])) == "CRASHED"

    try:
        wait_until(listed_crashed, timeout=CRASH_BOUND_SECONDS, what="`flow-run ls` to say so")
    except AssertionError:
        pytest.fail(
            f"{CRASH_BOUND_SECONDS} s after its process was SIGKILLed, `anabranch flow-run "
            f"ls` still lists the run as {shown.get(str(ids['flow_run_id']))}."
        )
    _crashed_and_freed(store, ids, killed_at, by="the CLI")


def test_a_parent_waiting_in_run_deployment_gives_up_when_worker_and_child_are_killed(
    lab: Lab,
) -> None:
    env, store = _home(lab)
    shutil.copy(FLOWS / "deployed.py", lab.folder / "deployed.py")
    lab.cli("work-pool", "create", "faults", env=env)
    lab.cli("deploy", "deployed.py:sleeper", "--name", "dead-child", "--pool", "faults", env=env)
    worker = lab.process([ANABRANCH, "worker", "start", "--pool", "faults"], env=env,
                         name="worker")
    parent = lab.flow(lab.folder / "deployed.py", "sleeper/dead-child", env=env, name="parent")
    parent.wait_for("READY")

    def child_running() -> bool:
        return any(
            run.flow_name == "sleeper" and run.state_type == "RUNNING" and run.infrastructure_pid
            for run in store.flow_runs()
        )

    wait_until(child_running, timeout=60, what="the deployed child Running in its process")
    (child,) = [run for run in store.flow_runs() if run.flow_name == "sleeper"]
    # The worker is frozen first, so it can not report its child's death: nobody alive
    # saw either die, and only the parent's wait can find out.
    worker.process.send_signal(signal.SIGSTOP)
    _kill(child.infrastructure_pid)
    worker.kill()

    code = parent.finish(CRASH_BOUND_SECONDS, after="its worker and child were SIGKILLed")

    assert code != 0, parent.dump()
    error = parent.stderr()
    assert "DeploymentRunFailed" in error, parent.dump()
    assert "Crashed" in error and (child.name in error or str(child.id) in error), parent.dump()
    assert store.flow_run(child.id).state_type == "CRASHED"


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


