"""PostgreSQL cuts every connection of the database (pg_terminate_backend) twice while 200
tasks tagged with a limit of 4 run, embedded (ANABRANCH_DATABASE_URL, no server) and
through a server: the flow completes, every run is stored Completed, no slot stays held,
and nothing is reported lost.
"""

from __future__ import annotations

import pytest

from faults.harness import Lab, terminate_backends, wait_for_every_record

pytestmark = pytest.mark.embedded_only

TASKS = 200
LIMIT = 4


@pytest.mark.timeout(240)
@pytest.mark.parametrize("through", ["embedded", "server"])
def test_tagged_tasks_complete_through_postgresql_terminating_every_connection_twice(
    lab: Lab, through: str
) -> None:
    database_url = lab.database("postgresql")
    home = lab.folder / "home"
    if through == "server":
        server = lab.server(database_url)
        env = lab.env(home, ANABRANCH_API_URL=server.url)
    else:
        env = lab.env(home, ANABRANCH_DATABASE_URL=database_url)
    lab.cli("concurrency-limit", "create", "db", str(LIMIT), env=env)
    flow = lab.flow(
        "tagged_tasks.py", "--tasks", str(TASKS), "--tag", "db", "--workers", "16",
        "--seconds", "0.02", "--ready-after", "50", "--ready-after", "130", env=env,
    )

    flow.wait_for("READY 1")
    cut = terminate_backends(database_url)
    flow.wait_for("READY 2")
    cut += terminate_backends(database_url)

    assert cut > 0, "no connection to the database was there to terminate"
    code = flow.finish(120, after="its database connections were terminated")
    assert code == 0, flow.dump()
    assert flow.message("DONE")["states"] == {"COMPLETED": TASKS}, flow.dump()
    assert "lost" not in flow.stderr(), flow.dump()
    store = lab.store(database_url)
    wait_for_every_record(store, flow.message("EXPECT"), flow=flow)
    assert store.slots_in_use("db") == 0
