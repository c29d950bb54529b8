"""Flows run against a real server: their runs, states and logs read back over HTTP and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from anabranch import flow, get_run_logger, task
from anabranch.client import get_client
from anabranch.client.http import HTTPClient
from anabranch.client.recorder import flush_all
from anabranch.schemas import StateType
from server_harness import ANABRANCH, Server, clean_env


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_get_client_talks_to_the_server_named_by_the_api_url(api: Server) -> None:
    client = get_client()

    assert isinstance(client, HTTPClient)
    assert client.api_url == api.url


def test_a_flow_run_in_this_process_is_readable_through_the_server(
    api: Server, client: HTTPClient
) -> None:
    name = unique("greet")

    @task
    def shout(word: str) -> str:
        get_run_logger().info("shouting %s", word)
        return word.upper()

    @flow(name=name)
    def greet(words: list[str]) -> list[str]:
        return [shout(word) for word in words]

    assert greet(["a", "b"]) == ["A", "B"]
    flush_all()

    (run,) = client.read_flow_runs(flow_name=name)
    assert run.state is not None and run.state.type is StateType.COMPLETED
    assert run.parameters == {"words": ["a", "b"]}
    assert client.read_flow_run(run.id) == run
    task_runs = client.read_task_runs(flow_run_id=run.id)
    assert [t.state.type for t in task_runs if t.state] == [StateType.COMPLETED] * 2
    assert client.read_task_run(task_runs[0].id) == task_runs[0]
    states = [record.state.type for record in client.read_states(run.id)]
    assert states[0] is StateType.PENDING and states[-1] is StateType.COMPLETED
    messages = [line.message for line in client.read_logs(flow_run_id=run.id)]
    assert "shouting a" in messages and "shouting b" in messages
    assert len(client.read_logs(flow_run_id=run.id, limit=1)) == 1


def test_a_failed_subflow_is_recorded_with_its_parent_and_filters_find_both(
    api: Server, client: HTTPClient
) -> None:
    parent_name, child_name = unique("parent"), unique("child")

    @flow(name=child_name)
    def child() -> None:
        raise ValueError("bad row 7")

    @flow(name=parent_name)
    def parent() -> str:
        state = child(return_state=True)
        return state.type.value

    assert parent() == "FAILED"
    flush_all()

    (parent_run,) = client.read_flow_runs(flow_name=parent_name)
    (child_run,) = client.read_flow_runs(parent_flow_run_id=parent_run.id)
    assert child_run.flow_name == child_name
    assert child_run.state is not None and "bad row 7" in (child_run.state.message or "")
    failed = client.read_flow_runs(state_types=[StateType.FAILED], flow_name=child_name)
    assert [r.id for r in failed] == [child_run.id]
    by_name = client.read_flow_runs(state_names=["failed"], flow_name=child_name)
    assert [r.id for r in by_name] == [child_run.id]
    assert client.read_flow_runs(state_types=[StateType.RUNNING], flow_name=child_name) == []


def test_flow_runs_page_newest_first(api: Server, client: HTTPClient) -> None:
    name = unique("paged")

    @flow(name=name)
    def paged(i: int) -> int:
        return i

    for i in range(5):
        paged(i)
    flush_all()

    everything = client.read_flow_runs(flow_name=name)
    assert [r.parameters["i"] for r in everything] == [4, 3, 2, 1, 0]
    pages = [client.read_flow_runs(flow_name=name, limit=2, offset=o) for o in (0, 2, 4)]
    assert [r.id for page in pages for r in page] == [r.id for r in everything]


def test_flows_in_other_processes_and_the_cli_see_the_same_server(
    api: Server, client: HTTPClient, tmp_path: Path
) -> None:
    name = unique("elsewhere")
    script = tmp_path / "elsewhere.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from anabranch import flow, task

            @task
            def double(x):
                return 2 * x

            @flow(name={name!r})
            def elsewhere(n: int) -> int:
                return sum(double.map(range(n)).result())

            print(elsewhere(int(sys.argv[1])))
            """
        )
    )
    env = clean_env(ANABRANCH_API_URL=api.url, ANABRANCH_HOME=str(tmp_path / "home"))
    processes = [
        subprocess.run(
            [sys.executable, str(script), str(n)],
            env=env, capture_output=True, text=True, timeout=120,
        )
        for n in (3, 4)
    ]
    assert [p.stdout.strip().splitlines()[-1] for p in processes] == ["6", "12"], processes

    runs = client.read_flow_runs(flow_name=name)
    assert sorted(r.parameters["n"] for r in runs) == [3, 4]
    assert {len(client.read_task_runs(flow_run_id=r.id)) for r in runs} == {3, 4}
    # The store on disk was never touched: everything went to the server.
    assert not (tmp_path / "home" / "anabranch.db").exists()

    listed = subprocess.run(
        [ANABRANCH, "flow-run", "ls", "--output", "json", "--limit", "100"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    shown = {row["id"]: row for row in json.loads(listed.stdout)}
    for run in runs:
        assert shown[str(run.id)]["flow_name"] == name
        assert shown[str(run.id)]["state"]["type"] == "COMPLETED"


def test_a_thousand_task_flow_reaches_the_server_in_few_batched_requests(
    api: Server, client: HTTPClient
) -> None:
    name = unique("wide")

    @task
    def one(i: int) -> int:
        return i

    @flow(name=name)
    def wide() -> int:
        return sum(one.map(range(1000)).result())

    transport = get_client()
    assert isinstance(transport, HTTPClient)
    flush_all()
    before = transport.statistics()["requests"]

    assert wide() == sum(range(1000))
    flush_all()

    requests = transport.statistics()["requests"] - before
    (run,) = client.read_flow_runs(flow_name=name)
    assert len(client.read_task_runs(flow_run_id=run.id)) == 1000
    # 1,000 task runs and 3,000+ state transitions: batched, not one request apiece.
    assert requests < 50, requests
