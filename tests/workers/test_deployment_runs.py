"""Deployed child flows end to end: a real server, `anabranch deploy`, `anabranch worker
start` processes, and parents calling run_deployment."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from anabranch.schemas import FlowRun, StateType
from anabranch.testing import wait_until
from workers.conftest import Platform

pytestmark = [pytest.mark.embedded_only, pytest.mark.timeout(240)]

CHILDREN = """
import os
import sys
from pathlib import Path

from anabranch import flow
from anabranch.client import get_client
from anabranch.context import FlowRunContext
from anabranch.testing import wait_until


@flow(name="Child Flow")
def child(x: int) -> dict:
    # What the store says of this run as its body starts: Running, claimed by this process.
    stored = get_client().read_flow_run(FlowRunContext.get().flow_run.id)
    return {
        "x": x, "doubled": 2 * x, "pid": os.getpid(), "prefix": sys.prefix,
        "claimed_by": stored.infrastructure_pid, "state_at_start": stored.state.type.value,
    }


@flow(name="Barrier Child")
def barrier_child(x: int, wave: int = 10) -> int:
    # The first `wave` children wait for each other, so they are surely all running at once.
    folder = Path(os.environ["BARRIER_DIR"])
    (folder / str(x)).touch()
    wait_until(lambda: len(list(folder.iterdir())) >= wave, timeout=60, what=f"{wave} children")
    return x


@flow(name="Gated Child")
def gated_child(name: str) -> str:
    # Runs until the test opens its gate (a file), so the test decides when it ends.
    gate = Path(os.environ["GATE_DIR"])
    (gate / f"{name}.started").touch()
    wait_until((gate / "open").exists, timeout=120, what="the test to open the gate")
    return name


@flow
def failing_child() -> None:
    raise ValueError("the child broke")
"""


def deploy_gated_child(platform: Platform, gate: Path, *pool_options: str) -> None:
    """Deploy the gated child as "Gated Child/gated" on work pool "local" (created with
    ``pool_options``); each of its runs goes on until the test creates ``gate / "open"``."""
    gate.mkdir()
    platform.write("children.py", CHILDREN)
    platform.cli("work-pool", "create", "local", *pool_options)
    platform.deploy(
        "children.py:gated_child", "gated", "local", "--job-variable", f"env.GATE_DIR={gate}"
    )


def _run(client, run_id: uuid.UUID) -> FlowRun:
    return client.read_flow_run(run_id)


def _children_of(client, parent_id: uuid.UUID) -> list[FlowRun]:
    return client.read_flow_runs(parent_flow_run_id=parent_id)


def _max_overlap(runs: list[FlowRun]) -> int:
    """The most runs that were Running at one instant, from their start and end times."""
    events = []
    for run in runs:
        assert run.start_time is not None and run.end_time is not None
        events += [(run.start_time, 1), (run.end_time, -1)]
    most = current = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        current += step
        most = max(most, current)
    return most


def _final(client, run_id: uuid.UUID, timeout: float = 120) -> FlowRun:
    def ended() -> bool:
        state = _run(client, run_id).state
        return state is not None and state.is_final()

    wait_until(ended, timeout=timeout, what=f"flow run {run_id} to end")
    return _run(client, run_id)


def test_run_deployment_returns_the_child_run_and_its_result_from_another_process(
    platform: Platform, client
) -> None:
    platform.write("children.py", CHILDREN)
    platform.cli("work-pool", "create", "local")
    platform.deploy("children.py:child", "child-deployment", "local")
    platform.start_worker("local")
    parent = platform.write(
        "parent.py",
        """
        import json, os
        from anabranch import flow, task
        from anabranch.deployments import run_deployment

        @task
        def trigger(i: int):
            return run_deployment(name="Child Flow/child-deployment", parameters={"x": i})

        @flow
        def parent():
            direct = run_deployment(name="Child Flow/child-deployment", parameters={"x": 1})
            in_task = trigger(2)
            return [direct.id, in_task.id, direct.result(), in_task.result(), os.getpid()]

        if __name__ == "__main__":
            print(json.dumps(parent(), default=str))
        """,
    )

    result = platform.run_python(parent)

    assert result.returncode == 0, result.stderr + platform.worker_logs()
    direct_id, task_id, direct, in_task, parent_pid = json.loads(result.stdout.splitlines()[-1])
    assert (direct["doubled"], in_task["doubled"]) == (2, 4)
    assert (direct["claimed_by"], in_task["claimed_by"]) == (direct["pid"], in_task["pid"])
    assert direct["state_at_start"] == in_task["state_at_start"] == "RUNNING"
    assert direct["pid"] != parent_pid and in_task["pid"] != parent_pid
    parent_run = client.read_flow_runs(flow_name="parent")[0]
    children = {run.id: run for run in _children_of(client, parent_run.id)}
    assert set(children) == {uuid.UUID(direct_id), uuid.UUID(task_id)}
    assert children[uuid.UUID(direct_id)].parent_task_run_id is None
    linked_task = client.read_task_run(children[uuid.UUID(task_id)].parent_task_run_id)
    assert linked_task.flow_run_id == parent_run.id
    assert all(run.state.type is StateType.COMPLETED for run in children.values())


def test_a_pool_limit_of_ten_runs_exactly_ten_of_a_hundred_children_at_once(
    platform: Platform, client, tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    platform.write("children.py", CHILDREN)
    platform.cli("work-pool", "create", "limited", "--concurrency-limit", "10")
    platform.deploy(
        "children.py:barrier_child", "child-deployment", "limited",
        "--job-variable", f"env.BARRIER_DIR={barrier}",
    )
    platform.start_worker("limited")
    platform.start_worker("limited")
    parent = platform.write(
        "parent.py",
        """
        from anabranch import flow, task
        from anabranch.deployments import run_deployment
        from anabranch.task_runners import ThreadPoolTaskRunner

        @task
        def trigger_child(i: int):
            return run_deployment(name="Barrier Child/child-deployment", parameters={"x": i})

        @flow(task_runner=ThreadPoolTaskRunner(max_workers=100))
        def parent_flow():
            futures = [trigger_child.submit(i) for i in range(100)]
            return [f.result().state.type.value for f in futures]

        if __name__ == "__main__":
            print(set(parent_flow()))
        """,
    )

    result = platform.run_python(parent, timeout=200)

    assert result.returncode == 0, result.stderr + platform.worker_logs()
    assert result.stdout.strip().splitlines()[-1] == "{'COMPLETED'}"
    children = client.read_flow_runs(flow_name="Barrier Child")
    assert len(children) == 100
    assert _max_overlap(children) == 10


def test_a_failing_child_stops_the_sequential_parent_there_and_fails_it(
    platform: Platform, client
) -> None:
    platform.write(
        "etl.py",
        """
        from anabranch import flow

        @flow
        def extract():
            return "rows"

        @flow(name="transform-load")
        def transform_load():
            raise ValueError("Non-deterministic error has occured.")

        @flow
        def cleanup():
            return "clean"
        """,
    )
    platform.cli("work-pool", "create", "dev-pool")
    for entrypoint in ("etl.py:extract", "etl.py:transform_load", "etl.py:cleanup"):
        platform.deploy(entrypoint, "dev", "dev-pool")
    platform.start_worker("dev-pool")
    snippets = Path(__file__).parents[1] / "seeds" / "snippets"
    snippet = snippets / "seed004_orchestrate_deployments.py"

    result = platform.run_python(snippet)

    assert result.returncode != 0
    assert "transform-load/dev" in result.stderr
    assert "Non-deterministic error has occured." in result.stderr
    # The failure is told without an unrelated exception chained to it.
    assert "no running event loop" not in result.stderr
    (parent,) = client.read_flow_runs(flow_name="orchestrate")
    assert parent.state.type is StateType.FAILED
    assert "transform-load" in parent.state.message
    names = {run.flow_name: run.state.type for run in _children_of(client, parent.id)}
    assert names == {"extract": StateType.COMPLETED, "transform-load": StateType.FAILED}
    assert client.read_flow_runs(flow_name="cleanup") == []


def test_timeout_zero_returns_before_the_child_starts(
    platform: Platform, client, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    deploy_gated_child(platform, gate)
    parent = platform.write(
        "parent.py",
        """
        from anabranch import flow
        from anabranch.deployments import run_deployment

        @flow
        def fire_and_forget():
            run = run_deployment(name="Gated Child/gated", parameters={"name": "a"}, timeout=0)
            return [str(run.id), run.state.type.value]

        if __name__ == "__main__":
            print(*fire_and_forget())
        """,
    )

    result = platform.run_python(parent)

    assert result.returncode == 0, result.stderr
    child_id, state_at_return = result.stdout.split()[-2:]
    assert state_at_return == "SCHEDULED"
    assert not (gate / "a.started").exists()
    platform.start_worker("local")
    wait_until(lambda: (gate / "a.started").exists(), timeout=60, what="the child to start")
    (gate / "open").touch()
    assert _final(client, uuid.UUID(child_id)).state.type is StateType.COMPLETED


def test_a_child_deployment_runs_in_its_own_virtual_environment(
    platform: Platform, client, tmp_path: Path
) -> None:
    # The parent sees `conflicting` 1.0; the child's environment has 2.0 instead.
    parent_libs = tmp_path / "parent-libs"
    parent_libs.mkdir()
    (parent_libs / "conflicting.py").write_text("VERSION = '1.0'\n")
    venv = tmp_path / "child-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (child_site,) = venv.glob("lib/python*/site-packages")
    (child_site / "conflicting.py").write_text("VERSION = '2.0'\n")
    (child_site / "child_only.py").write_text("NAME = 'child only'\n")
    # anabranch itself comes from the parent's environment, after the child's own packages.
    parent_site = next(p for p in sys.path if p.endswith("site-packages") and "venv" in p)
    (child_site / "parent_packages.pth").write_text(
        f"import site; site.addsitedir({parent_site!r})\n"
    )
    platform.write(
        "versions.py",
        """
        import sys
        import child_only
        import conflicting
        from anabranch import flow

        @flow
        def versions() -> list:
            return [conflicting.VERSION, sys.prefix]
        """,
    )
    platform.cli("work-pool", "create", "local")
    # The child's own interpreter describes the flow: `child_only` exists only there.
    platform.deploy(
        "versions.py:versions", "isolated", "local",
        "--job-variable", f"python={venv / 'bin' / 'python'}",
    )
    platform.start_worker("local")
    parent = platform.write(
        "parent.py",
        f"""
        import sys
        sys.path.insert(0, {str(parent_libs)!r})
        import conflicting
        from anabranch import flow
        from anabranch.deployments import run_deployment

        @flow
        def parent():
            child = run_deployment(name="versions/isolated")
            return [conflicting.VERSION, sys.prefix, *child.result()]

        if __name__ == "__main__":
            print(*parent())
        """,
    )

    result = platform.run_python(parent)

    assert result.returncode == 0, result.stderr + platform.worker_logs()
    parent_version, parent_prefix, child_version, child_prefix = result.stdout.split()[-4:]
    assert (parent_version, child_version) == ("1.0", "2.0")
    assert Path(child_prefix) == venv and Path(parent_prefix) != venv


def test_cancelling_a_parent_cancels_its_deployment_children_and_frees_the_pool(
    platform: Platform, client, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    deploy_gated_child(platform, gate, "--concurrency-limit", "3")
    platform.write(
        "parent.py",
        """
        from anabranch import flow
        from anabranch.deployments import run_deployment

        @flow
        def parent():
            run_deployment(name="Gated Child/gated", parameters={"name": "forgotten"}, timeout=0)
            run_deployment(name="Gated Child/gated", parameters={"name": "awaited"})
        """,
    )
    platform.deploy("parent.py:parent", "main", "local")
    platform.start_worker("local")
    parent_id = client.create_flow_run_from_deployment(
        client.read_deployment_by_name("parent/main").id
    ).id
    wait_until(
        lambda: (gate / "forgotten.started").exists() and (gate / "awaited.started").exists(),
        timeout=60,
        what="both children to start",
    )

    platform.cli("flow-run", "cancel", str(parent_id))

    parent = _final(client, parent_id)
    children = [_final(client, child.id) for child in _children_of(client, parent_id)]
    assert parent.state.type is StateType.CANCELLED
    assert sorted(run.state.type.value for run in children) == ["CANCELLED", "CANCELLED"]
    wait_until(
        lambda: client.read_work_pool("local").active_runs == 0, timeout=30,
        what="the pool's slots to be free",
    )
    assert not (gate / "open").exists()


def test_a_worker_killed_mid_run_leaves_its_runs_crashed_and_a_second_worker_takes_the_rest(
    platform: Platform, client, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    deploy_gated_child(platform, gate, "--concurrency-limit", "2")
    for name in "abcd":
        platform.cli("deployment", "run", "Gated Child/gated", "--param", f"name={name}")
    first = platform.start_worker("local")

    def two_running() -> bool:
        runs = client.read_flow_runs(flow_name="Gated Child", state_types=[StateType.RUNNING])
        return len(runs) == 2

    wait_until(two_running, timeout=60, what="the first worker's two children to run")
    taken_first = {
        run.parameters["name"]
        for run in client.read_flow_runs(flow_name="Gated Child", state_types=[StateType.RUNNING])
    }

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    runs = {run.parameters["name"]: run for run in client.read_flow_runs(flow_name="Gated Child")}
    for name in taken_first:
        crashed = _final(client, runs[name].id, timeout=60)
        assert crashed.state.type is StateType.CRASHED
    (gate / "open").touch()
    platform.start_worker("local")

    for name in set("abcd") - taken_first:
        state = _final(client, runs[name].id).state
        history = [str(record.state) for record in client.read_states(runs[name].id)]
        assert state.type is StateType.COMPLETED, f"{name}: {history}\n{platform.worker_logs()}"
    assert client.read_work_pool("local").active_runs == 0


def test_cancelling_a_parent_run_by_a_plain_process_cancels_its_subflow_and_children(
    platform: Platform, client, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    deploy_gated_child(platform, gate)
    platform.start_worker("local")
    parent = platform.write(
        "parent.py",
        f"""
        import time
        from pathlib import Path
        from anabranch import flow
        from anabranch.deployments import run_deployment

        @flow
        def waiting_subflow():
            Path({str(gate)!r}, "subflow.started").touch()
            while True:
                time.sleep(0.02)

        @flow
        def parent():
            run_deployment(name="Gated Child/gated", parameters={{"name": "child"}}, timeout=0)
            waiting_subflow()

        if __name__ == "__main__":
            parent()
        """,
    )
    process = subprocess.Popen(
        [sys.executable, str(parent)], cwd=platform.folder, env=platform.env,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(
            lambda: (gate / "subflow.started").exists() and (gate / "child.started").exists(),
            timeout=60, what="the subflow and the child to start",
        )
        (parent_run,) = client.read_flow_runs(flow_name="parent")

        platform.cli("flow-run", "cancel", str(parent_run.id))

        assert process.wait(timeout=60) != 0
    finally:
        process.kill()
    runs = [parent_run, *_children_of(client, parent_run.id)]
    states = {run.flow_name: _final(client, run.id).state.type for run in runs}
    assert states == {
        "parent": StateType.CANCELLED,
        "waiting-subflow": StateType.CANCELLED,
        "Gated Child": StateType.CANCELLED,
    }


def test_flow_serve_runs_its_deployment_runs_without_a_worker(
    platform: Platform, client
) -> None:
    server_script = platform.write(
        "served.py",
        """
        from anabranch import flow

        @flow
        def greet(name: str) -> str:
            return f"hello {name}"

        if __name__ == "__main__":
            greet.serve(name="served", limit=2)
        """,
    )
    serving = subprocess.Popen(
        [sys.executable, str(server_script)], cwd=platform.folder, env=platform.env,
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert "greet/served" in serving.stdout.readline()
        result = platform.cli(
            "deployment", "run", "greet/served", "--param", "name=ana", "--watch"
        )
    finally:
        serving.send_signal(signal.SIGINT)
        serving.wait(timeout=30)

    assert result.returncode == 0
    (run,) = client.read_flow_runs(flow_name="greet")
    assert run.state.type is StateType.COMPLETED and run.result() == "hello ana"


def test_a_backfill_of_seven_daily_runs_is_worked_off_under_the_pool_limit(
    platform: Platform, client
) -> None:
    platform.write(
        "daily.py",
        """
        from anabranch import flow

        @flow
        def daily_report(region: str) -> str:
            return region
        """,
    )
    platform.cli("work-pool", "create", "reports", "--concurrency-limit", "2")
    platform.deploy(
        "daily.py:daily_report", "nightly", "reports", "--cron", "0 0 * * *",
        "--param", "region=emea",
    )

    result = platform.cli(
        "deployment", "backfill", "daily-report/nightly",
        "--start", "2024-03-01T00:00:00+00:00", "--end", "2024-03-07T00:00:00+00:00",
    )
    platform.start_worker("reports")

    assert "7" in result.stdout
    runs = [
        run for run in client.read_flow_runs(flow_name="daily-report", limit=100)
        if run.idempotency_key and run.idempotency_key.startswith("backfill:")
    ]
    assert sorted(run.expected_start_time.day for run in runs) == [1, 2, 3, 4, 5, 6, 7]
    finished = [_final(client, run.id) for run in runs]
    assert all(run.state.type is StateType.COMPLETED for run in finished)
    assert all(run.result() == "emea" for run in finished)
    assert _max_overlap(finished) <= 2


def test_async_flows_await_run_deployment(platform: Platform, client) -> None:
    platform.write("children.py", CHILDREN)
    platform.cli("work-pool", "create", "local")
    platform.deploy("children.py:child", "child-deployment", "local")
    platform.start_worker("local")
    parent = platform.write(
        "parent.py",
        """
        import asyncio
        from anabranch import flow
        from anabranch.deployments import run_deployment

        @flow
        async def async_parent():
            runs = await asyncio.gather(
                *(run_deployment("Child Flow/child-deployment", parameters={"x": i})
                  for i in range(3))
            )
            return sorted(run.result()["doubled"] for run in runs)

        if __name__ == "__main__":
            print(asyncio.run(async_parent()))
        """,
    )

    result = platform.run_python(parent)

    assert result.returncode == 0, result.stderr + platform.worker_logs()
    assert result.stdout.strip().splitlines()[-1] == "[0, 2, 4]"


@pytest.mark.parametrize(
    ("options", "ends"), [((), "COMPLETED"), (("--cancel-on-exit",), "CANCELLED")]
)
def test_ctrl_c_on_a_worker_lets_its_runs_finish_or_cancels_them_as_configured(
    platform: Platform, client, tmp_path: Path, options: tuple[str, ...], ends: str
) -> None:
    gate = tmp_path / "gate"
    deploy_gated_child(platform, gate)
    platform.cli("deployment", "run", "Gated Child/gated", "--param", "name=a")
    worker = platform.start_worker("local", *options)
    wait_until(lambda: (gate / "a.started").exists(), timeout=60, what="the child to start")

    worker.send_signal(signal.SIGINT)
    if not options:
        # It takes no new work, and waits for the running child.
        platform.cli("deployment", "run", "Gated Child/gated", "--param", "name=b")
        with pytest.raises(subprocess.TimeoutExpired):
            worker.wait(timeout=1)
        (gate / "open").touch()
    assert worker.wait(timeout=60) == 0

    runs = {run.parameters["name"]: run for run in client.read_flow_runs(flow_name="Gated Child")}
    assert _final(client, runs["a"].id).state.type.value == ends
    if not options:
        assert runs["b"].state.type is StateType.SCHEDULED and runs["b"].worker_name is None
