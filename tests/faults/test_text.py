"""Text with a NUL character (\\x00), which PostgreSQL can not store in text or JSON, in a
log line and in a task's parameter (G5).

On every store (a server on PostgreSQL, PostgreSQL embedded, SQLite embedded) the flow
completes, all of its runs are stored Completed (one bad record never costs the rest of its
batch), and the two texts are stored without the raw NUL, the text around it kept, and
stored the same way on SQLite as on PostgreSQL.
"""

from __future__ import annotations

import pytest

from faults.harness import Lab, Store, wait_for_every_record

pytestmark = pytest.mark.embedded_only

STORES = ["server-postgresql", "embedded-postgresql", "embedded-sqlite"]


def _run_nul_flow(lab: Lab, where: str, tasks: int) -> Store:
    """Run the flow on the store ``where``; the database it was stored in."""
    home = lab.folder / f"home-{where}"
    if where == "server-postgresql":
        server = lab.server(lab.database("postgresql"))
        database_url = server.database_url
        env = lab.env(home, ANABRANCH_API_URL=server.url)
    elif where == "embedded-postgresql":
        database_url = lab.database("postgresql")
        env = lab.env(home, ANABRANCH_DATABASE_URL=database_url)
    else:
        database_url = f"sqlite:///{home / 'anabranch.db'}"
        env = lab.env(home)
    flow = lab.flow("nul_text.py", "--tasks", str(tasks), env=env, name=f"nul-{where}")
    code = flow.finish(120)
    assert code == 0, flow.dump()
    assert "lost" not in flow.stderr(), flow.dump()
    store = lab.store(database_url)
    expected = {**flow.message("EXPECT"), "log_lines": 3}
    wait_for_every_record(store, expected, flow=flow)
    return store


def _stored_texts(store: Store) -> tuple[str, str]:
    """The stored log line and task parameter that held a NUL."""
    (line,) = store.log_messages("log-before")
    (parameter,) = [
        run.parameters["text"] for run in store.task_runs()
        if "param-before" in run.parameters.get("text", "")
    ]
    return line, parameter


@pytest.mark.timeout(240)
@pytest.mark.parametrize("where", STORES)
def test_a_nul_in_a_log_line_and_a_parameter_is_stored_and_costs_no_other_record(
    lab: Lab, where: str
) -> None:
    store = _run_nul_flow(lab, where, tasks=200)

    line, parameter = _stored_texts(store)
    assert "\x00" not in line and "\x00" not in parameter, (line, parameter)
    assert line.startswith("faults-line log-before") and line.endswith("log-after"), line
    assert parameter.startswith("param-before") and parameter.endswith("param-after"), parameter
    assert sorted(store.log_messages("faults-line plain")) == [
        "faults-line plain after", "faults-line plain before",
    ]


@pytest.mark.timeout(240)
def test_a_nul_is_stored_the_same_way_on_sqlite_and_postgresql(lab: Lab) -> None:
    stored = {where: _stored_texts(_run_nul_flow(lab, where, tasks=4)) for where in STORES}

    assert len(set(stored.values())) == 1, stored
