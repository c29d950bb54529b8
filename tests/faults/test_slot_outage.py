"""A server killed with SIGKILL while tasks tagged with a concurrency limit wait for and
hold its slots, then started again on the same port and database (G1, G4; G2, G3 for an
outage longer than the retry budget).

The flow process must exit (no hang) and no slot may stay held. Within the retry budget
every task run ends Completed; past it, each ends Completed or Failed saying the server or
the limit was the reason.
"""

from __future__ import annotations

import pytest

from anabranch.testing import wait_until
from faults.harness import FINAL, FlowProcess, Lab, Store, by_state, spooled_files

pytestmark = pytest.mark.embedded_only

TASKS = 400
LIMIT = 4
# The scenario: 20 ms tasks under a limit of 4 on 16 threads; the kill comes once
# this many task bodies finished (about 1.5 s into the flow).
KILL_AFTER = 75
# A 4 s outage is well inside the retry budget (60 s by default); the flow has that long
# again, plus room for a slow machine, to finish after the server is back.
AFTER_RESTART_SECONDS = 90


def _tagged_flow(lab: Lab, env: dict[str, str]) -> FlowProcess:
    lab.cli("concurrency-limit", "create", "db", str(LIMIT), env=env)
    return lab.flow(
        "tagged_tasks.py", "--tasks", str(TASKS), "--tag", "db", "--workers", "16",
        "--seconds", "0.02", "--ready-after", str(KILL_AFTER), env=env,
    )


def _explained(run) -> bool:
    """A Failed task run says the server or the limit was why."""
    message = (run.state_message or "").lower()
    return any(word in message for word in ("server", "concurrency", "slot"))


def _every_task_run_ended_for_a_stated_reason(store: Store) -> None:
    def all_final() -> bool:
        runs = store.task_runs()
        return len(runs) == TASKS and all(run.state_type in FINAL for run in runs)

    wait_until(all_final, timeout=30, what=f"{TASKS} task runs in a final state")
    unexplained = [
        (run.name, run.state_type, run.state_message)
        for run in store.task_runs()
        if run.state_type != "COMPLETED" and not (run.state_type == "FAILED" and _explained(run))
    ]
    assert not unexplained, unexplained[:5]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_tagged_tasks_outlive_a_4_second_server_restart_and_hold_no_slot_at_the_end(
    lab: Lab, kind: str
) -> None:
    server = lab.server(lab.database(kind))
    home = lab.folder / "home"
    env = lab.env(home, ANABRANCH_API_URL=server.url)
    flow = _tagged_flow(lab, env)
    flow.wait_for("READY 1")

    server.outage(4)

    code = flow.finish(AFTER_RESTART_SECONDS, after="the server came back after a 4 s outage")
    assert code == 0, flow.dump()
    store = lab.store(server.database_url)
    # Within the retry budget nothing fails: slot requests are resent and granted once.
    wait_until(
        lambda: by_state(store.task_runs()) == {"COMPLETED": TASKS},
        timeout=30, what=f"{TASKS} task runs Completed",
    )
    assert by_state(store.flow_runs()) == {"COMPLETED": 1}
    assert store.slots_in_use("db") == 0
    assert not spooled_files(home)


# The budget is short and the server stays down for as long as the flow may take to give
# up, so a flow that merely outlasted the outage (kept retrying past its budget) can not
# pass: it must exit while the server is still down.
SHORT_BUDGET = "3"
GIVE_UP_SECONDS = 22.0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tagged_tasks_cut_off_longer_than_the_retry_budget_end_and_their_flow_exits(
    lab: Lab,
) -> None:
    server = lab.server(lab.database("sqlite"))
    home = lab.folder / "home"
    env = lab.env(home, ANABRANCH_API_URL=server.url, ANABRANCH_CLIENT_RETRY_SECONDS=SHORT_BUDGET)
    flow = _tagged_flow(lab, env)
    flow.wait_for("READY 1")

    server.kill()
    code = flow.exit_within(GIVE_UP_SECONDS)
    if code is None:
        flow.abort()
        pytest.fail(
            f"The flow was still running {GIVE_UP_SECONDS:g} s into an outage with a "
            f"{SHORT_BUDGET} s retry budget: it does not give up.\n{flow.dump()}"
        )
    server.start()

    assert code == 0, flow.dump()
    assert "spool" in flow.stderr().lower(), flow.dump()
    # The next anabranch process on this home and server delivers what was spooled.
    lab.cli("flow-run", "ls", env=env)
    store = lab.store(server.database_url)
    _every_task_run_ended_for_a_stated_reason(store)
    assert by_state(store.flow_runs()) == {"COMPLETED": 1}
    assert not spooled_files(home)


@pytest.mark.timeout(300)
def test_a_slot_release_the_server_never_hears_of_costs_no_worker_and_no_run(
    lab: Lab,
) -> None:
    server = lab.server(lab.database("sqlite"))
    home = lab.folder / "home"
    env = lab.env(home, ANABRANCH_API_URL=server.url, ANABRANCH_CLIENT_RETRY_SECONDS="1")
    lab.cli("concurrency-limit", "create", "db", str(LIMIT), env=env)
    go = lab.folder / "go"
    flow = lab.flow("slot_then_plain.py", "--tag", "db", "--go", str(go), env=env)
    flow.wait_for("HOLDING")

    server.kill()
    go.touch()  # the tagged task ends while the server is down: its release fails

    code = flow.finish(AFTER_RESTART_SECONDS, after="the tagged task ended with the server down")
    assert code == 0, flow.dump()
    assert flow.message("DONE") == {"first": "COMPLETED", "second": "COMPLETED"}, flow.dump()
    assert "freed when their lease expires" in flow.stderr(), flow.dump()
    server.start()
    lab.cli("flow-run", "ls", env=env)
    store = lab.store(server.database_url)
    wait_until(
        lambda: by_state(store.task_runs()) == {"COMPLETED": 2},
        timeout=30, what="both task runs Completed",
    )
    assert not spooled_files(home)


@pytest.mark.timeout(300)
def test_a_tagged_task_whose_limits_can_not_be_looked_up_ends_failed_not_pending(
    lab: Lab,
) -> None:
    server = lab.server(lab.database("sqlite"))
    home = lab.folder / "home"
    env = lab.env(home, ANABRANCH_API_URL=server.url, ANABRANCH_CLIENT_RETRY_SECONDS="1")
    lab.cli("concurrency-limit", "create", "db", str(LIMIT), env=env)
    server.kill()

    flow = lab.flow("tagged_tasks.py", "--tasks", "1", "--tag", "db", env=env)
    code = flow.finish(AFTER_RESTART_SECONDS, after="it ran with the server down")
    assert code != 0, flow.dump()  # the flow fails: its task could not be limited
    server.start()
    lab.cli("flow-run", "ls", env=env)

    store = lab.store(server.database_url)
    wait_until(lambda: len(store.task_runs()) == 1, timeout=30, what="the task run stored")
    (run,) = store.task_runs()
    assert run.state_type == "FAILED", run
    assert "concurrency limits could not be looked up" in run.state_message
    assert by_state(store.flow_runs()) == {"FAILED": 1}
