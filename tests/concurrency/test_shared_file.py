"""The seed's shared-file pattern: a limit of 1 around appending to one file keeps every line
whole, with 50 subflows in three processes appending at once, each line in several writes."""

from __future__ import annotations

from pathlib import Path

from anabranch.schemas import StateType

WRITER = Path(__file__).with_name("shared_file_writer.py")
LINE_BODY = "0123456789abcdefghijklmnopqrstuvwxyz" * 12  # written 64 characters at a time
COUNTS = {"p0": 17, "p1": 17, "p2": 16}


def test_a_limit_of_one_keeps_lines_appended_from_three_processes_intact(
    client, spawn, tmp_path: Path
):
    client.create_concurrency_limit("shared-file", 1)
    shared = tmp_path / "shared.txt"
    writers = [
        spawn(str(shared), prefix, str(count), LINE_BODY, script=WRITER)
        for prefix, count in COUNTS.items()
    ]
    for writer in writers:
        writer.expect("READY")
    for writer in writers:
        writer.send("go")
    for writer in writers:
        assert writer.wait(timeout=60) == 0, "".join(writer.stderr)

    lines = shared.read_text().splitlines()
    expected = {f"{prefix}-{i}" for prefix, count in COUNTS.items() for i in range(count)}
    assert len(lines) == len(expected) == 50
    assert sorted(line.partition(":")[0] for line in lines) == sorted(expected)
    assert [line for line in lines if line.partition(":")[2] != LINE_BODY] == []

    parents = client.read_flow_runs(flow_name="writer")
    assert len(parents) == 3
    assert max(r.start_time for r in parents) < min(r.end_time for r in parents), "no overlap"
    appends = client.read_flow_runs(flow_name="append-line")
    assert len(appends) == 50
    assert {r.state.type for r in appends} == {StateType.COMPLETED}
    assert client.read_concurrency_limit("shared-file").active_slots == 0
