"""One record a store refuses costs only itself: the recorder splits a refused batch until
it finds the records at fault, stores the rest, and names what it gave up."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from anabranch.client.embedded import EmbeddedClient
from anabranch.client.recorder import Recorder
from anabranch.schemas import FlowRun, LogRecord, State, StateType, TaskRun

AT = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_one_record_the_store_refuses_costs_only_itself(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = EmbeddedClient(f"sqlite:///{tmp_path / 'store.db'}")
    recorder = Recorder(lambda: store)
    flow = FlowRun(name="mixed", flow_name="etl")
    flow.state = State(type=StateType.RUNNING, name="Running", timestamp=AT)
    recorder.record_flow_run(flow, flow.state)
    tasks = [TaskRun(name=f"t-{i}", task_key="etl.t", flow_run_id=flow.id) for i in range(20)]
    # A time without a zone: the store can not know its instant and refuses the record.
    tasks[7].start_time = datetime(2025, 3, 1, 12, 0)
    for task in tasks:
        recorder.record_task_run(
            task, State(type=StateType.COMPLETED, name="Completed", timestamp=AT)
        )
    recorder.record_log(LogRecord(flow_run_id=flow.id, name="f", level=20, message="kept"))

    assert recorder.flush()
    recorder.close()

    stored = {run.id for run in store.read_task_runs(flow_run_id=flow.id)}
    assert stored == {task.id for i, task in enumerate(tasks) if i != 7}
    assert store.read_flow_run(flow.id).state.type is StateType.RUNNING
    assert [log.message for log in store.read_logs(flow_run_id=flow.id)] == ["kept"]
    lost = [line for line in capsys.readouterr().err.splitlines() if "anabranch: lost" in line]
    assert len(lost) == 1, lost
    assert "the records of 1 task run (1 record, 0 log lines)" in lost[0]
    assert "time zone is unknown" in lost[0]
