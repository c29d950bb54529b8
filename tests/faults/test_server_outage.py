"""A server killed with SIGKILL in the middle of a flow and started again on the same port
and database after 4, 15 or 45 s (G1, G3), or after longer than the retry budget (G2, G3).

Within the budget nothing is lost and nothing hangs: once the flow process exits, the
database holds every flow run, task run and log line the flow made, each run Completed.
Past the budget the flow exits anyway, saying on one line that its records were spooled,
and the next anabranch process on the same home and server delivers them.

Heartbeats are every 2 s on both sides, so the restarted server finds the flow's runs
silent for longer than it tolerates (3 heartbeats) and may mark them Crashed before their
late records arrive: they must still end Completed (G3).
"""

from __future__ import annotations

import pytest

from faults.harness import FlowProcess, Lab, RestartableServer, spooled_files, wait_for_every_record

pytestmark = pytest.mark.embedded_only

HEARTBEAT = {"ANABRANCH_HEARTBEAT_SECONDS": "2"}
# After the restart the flow has the rest of the retry budget (60 s by default) and room
# for a slow machine to deliver its records and exit.
AFTER_RESTART_SECONDS = 90
OUTAGES = [
    pytest.param(4, id="4s"),
    pytest.param(15, id="15s"),
    pytest.param(45, id="45s", marks=pytest.mark.slow),
]


def _through_an_outage(
    lab: Lab, server: RestartableServer, script: str, args: list[str], seconds: float
) -> FlowProcess:
    """Run the flow, kill the server once the flow says half its work is done, restart
    it after ``seconds``; returns the flow once it exited (0) and left no spool."""
    home = lab.folder / "home"
    env = lab.env(home, ANABRANCH_API_URL=server.url, **HEARTBEAT)
    flow = lab.flow(script, *args, env=env)
    flow.wait_for("READY 1")
    server.outage(seconds)
    code = flow.finish(
        AFTER_RESTART_SECONDS, after=f"the server came back after a {seconds:g} s outage"
    )
    assert code == 0, flow.dump()
    assert "spool" not in flow.stderr().lower(), flow.dump()
    assert not spooled_files(home)
    return flow


@pytest.mark.timeout(300)
@pytest.mark.parametrize("seconds", OUTAGES)
def test_a_flow_of_2000_tasks_loses_no_record_to_a_server_down_for(
    lab: Lab, seconds: float
) -> None:
    server = lab.server(lab.database("postgresql"), **HEARTBEAT)

    flow = _through_an_outage(lab, server, "many_tasks.py", ["--tasks", "2000"], seconds)

    wait_for_every_record(lab.store(server.database_url), flow.message("EXPECT"), flow=flow)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("seconds", OUTAGES)
def test_a_flow_of_200_subflows_loses_no_record_to_a_server_down_for(
    lab: Lab, seconds: float
) -> None:
    server = lab.server(lab.database("sqlite"), **HEARTBEAT)

    flow = _through_an_outage(lab, server, "subflows.py", ["--subflows", "200"], seconds)

    wait_for_every_record(lab.store(server.database_url), flow.message("EXPECT"), flow=flow)


# The server stays down for as long as the flow may take to give up, so a flow that kept
# retrying past its budget (and delivered after the restart) can not pass: it must exit
# while the server is still down, its records in the spool.
SHORT_BUDGET = "3"
GIVE_UP_SECONDS = 22.0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_records_a_server_down_past_the_budget_never_took_are_spooled_and_delivered_later(
    lab: Lab,
) -> None:
    server = lab.server(lab.database("sqlite"), **HEARTBEAT)
    home = lab.folder / "home"
    env = lab.env(
        home, ANABRANCH_API_URL=server.url, ANABRANCH_CLIENT_RETRY_SECONDS=SHORT_BUDGET,
        **HEARTBEAT,
    )
    flow = lab.flow("many_tasks.py", "--tasks", "500", env=env)
    flow.wait_for("READY 1")

    server.kill()
    code = flow.exit_within(GIVE_UP_SECONDS)
    if code is None:
        flow.abort()
        pytest.fail(
            f"The flow was still running {GIVE_UP_SECONDS:g} s into an outage with a "
            f"{SHORT_BUDGET} s retry budget: it does not give up.\n{flow.dump()}"
        )
    assert code == 0, flow.dump()
    spool_lines = [line for line in flow.stderr().splitlines() if "spool" in line.lower()]
    assert len(spool_lines) == 1, flow.dump()
    assert spooled_files(home), "the flow said it spooled records, but the spool is empty"
    server.start()

    # Any anabranch process on the same home and server delivers the spool.
    lab.cli("flow-run", "ls", env=env)

    wait_for_every_record(lab.store(server.database_url), flow.message("EXPECT"), flow=flow)
    assert not spooled_files(home)
