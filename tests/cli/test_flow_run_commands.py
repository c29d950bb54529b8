"""`anabranch flow-run ls | inspect | logs`, run as the installed console script."""

from __future__ import annotations

import json
import re
import uuid


def lines_with(output: str, *names: str) -> list[str]:
    return [line for line in output.splitlines() if any(name in line for name in names)]


def test_ls_lists_flow_runs_newest_first(anabranch) -> None:
    result = anabranch("flow-run", "ls")

    assert result.returncode == 0, result.stderr
    names = ["lazy-newt", "quiet-lark", "calm-heron", "brave-otter", "swift-fox"]
    listed = [name for line in result.stdout.splitlines() for name in names if name in line]
    assert listed == names


def test_ls_shows_full_ids_to_copy_into_inspect(anabranch, runs) -> None:
    result = anabranch("flow-run", "ls")

    assert str(runs["etl"].id) in result.stdout


def test_ls_limit_keeps_the_newest(anabranch) -> None:
    result = anabranch("flow-run", "ls", "--limit", "2")

    assert "lazy-newt" in result.stdout
    assert "quiet-lark" in result.stdout
    assert "brave-otter" not in result.stdout


def test_ls_state_matches_a_state_type_or_name_in_any_case(anabranch) -> None:
    failed = anabranch("flow-run", "ls", "--state", "failed").stdout
    retrying = anabranch("flow-run", "ls", "--state", "RETRYING").stdout
    running = anabranch("flow-run", "ls", "--state", "Running").stdout

    assert "brave-otter" in failed
    assert "swift-fox" not in failed
    assert "lazy-newt" in retrying
    assert "brave-otter" not in retrying
    assert "lazy-newt" in running


def test_ls_output_json_is_a_list_of_flow_runs(anabranch, runs) -> None:
    result = anabranch("flow-run", "ls", "--output", "json", "--state", "completed")

    listed = json.loads(result.stdout)
    assert [run["name"] for run in listed] == ["quiet-lark", "calm-heron", "swift-fox"]
    assert listed[-1]["id"] == str(runs["report"].id)
    assert listed[-1]["state"]["type"] == "COMPLETED"


def test_inspect_shows_task_runs_and_nested_subflows_as_a_tree(anabranch, runs) -> None:
    result = anabranch("flow-run", "inspect", str(runs["etl"].id))

    assert result.returncode == 0, result.stderr
    order = ["brave-otter", "extract-0", "transform-0", "calm-heron", "publish-0", "quiet-lark"]
    tree = lines_with(result.stdout, *order)
    assert [next(n for n in order if n in line) for line in tree] == order
    depth = {name: _indent(line) for name, line in zip(order, tree, strict=True)}
    assert depth["extract-0"] == depth["transform-0"] == depth["calm-heron"] > depth["brave-otter"]
    assert depth["quiet-lark"] > depth["publish-0"] > depth["calm-heron"]
    assert "Failed" in tree[order.index("transform-0")]
    assert "ValueError: bad row 7" in result.stdout
    assert "1 of 3 task runs failed" in result.stdout


def test_inspect_output_json_nests_task_runs_and_subflows(anabranch, runs) -> None:
    result = anabranch("flow-run", "inspect", str(runs["etl"].id), "--output", "json")

    root = json.loads(result.stdout)
    assert root["kind"] == "flow_run"
    assert [c["name"] for c in root["children"]] == ["extract-0", "transform-0", "calm-heron"]
    load = root["children"][2]
    assert load["kind"] == "flow_run"
    publish = load["children"][0]
    assert (publish["kind"], publish["name"]) == ("task_run", "publish-0")
    assert [c["name"] for c in publish["children"]] == ["quiet-lark"]
    assert root["children"][1]["state"]["message"] == "ValueError: bad row 7"


def test_logs_print_the_flow_run_and_its_task_runs_lines_in_time_order(anabranch, runs) -> None:
    result = anabranch("flow-run", "logs", str(runs["etl"].id))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3  # the subflow's "loading" is its own run's log
    pattern = r"\d\d:\d\d:\d\d\.\d{3} \| (\w+) +\| (.+)"
    assert [re.fullmatch(pattern, line).groups() for line in lines] == [
        ("INFO", "Flow run 'brave-otter' - Beginning"),
        ("INFO", "Task run 'extract-0' - extracted 3 rows"),
        ("ERROR", "Task run 'transform-0' - bad row 7 [bold]not markup[/bold]"),
    ]


def test_an_unknown_id_exits_1_with_one_line_naming_it(anabranch) -> None:
    missing = uuid.uuid4()

    for command in ("inspect", "logs"):
        result = anabranch("flow-run", command, str(missing))

        assert result.returncode == 1
        assert result.stderr.strip() == (
            f"Error: No flow run with id {missing}; `anabranch flow-run ls` lists the flow runs."
        )


def test_an_unknown_id_start_or_name_exits_1_with_one_line(anabranch) -> None:
    result = anabranch("flow-run", "inspect", "not-an-id")

    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "No flow run has the id, id start or name 'not-an-id'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_run_is_found_by_the_start_of_its_id_or_by_its_name(anabranch, runs) -> None:
    etl = runs["etl"]
    # Ids are UUIDv7: their first digits are the time they were made, so runs made in the
    # same millisecond share them, and a unique start is longer than git's.
    by_prefix = anabranch("flow-run", "inspect", str(etl.id)[:30])
    by_name = anabranch("flow-run", "logs", etl.name)

    assert by_prefix.returncode == 0, by_prefix.stderr
    assert etl.name in by_prefix.stdout
    assert by_name.returncode == 0, by_name.stderr


def test_an_id_start_several_runs_share_names_them(anabranch, runs) -> None:
    # The runs were made in one go: their UUIDv7 ids share their first digits.
    shared = str(runs["etl"].id)[:4]
    result = anabranch("flow-run", "inspect", shared)

    assert result.returncode == 1
    assert f"'{shared}' fits several flow runs:" in result.stderr
    assert "give more of the id" in result.stderr


def test_version_prints_the_installed_version(anabranch) -> None:
    result = anabranch("version")

    assert re.fullmatch(r"anabranch \d+\.\d+\.\d+\S*\n", result.stdout)


def test_config_view_shows_the_home_and_where_the_database_is(anabranch, cli_home) -> None:
    result = anabranch("config", "view")

    assert result.returncode == 0, result.stderr
    assert re.search(rf"ANABRANCH_HOME +{re.escape(str(cli_home))} +environment", result.stdout)
    assert f"SQLite file {cli_home / 'anabranch.db'}, exists" in result.stdout


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" │├└─"))


def test_ls_flow_keeps_that_flow_s_runs(anabranch) -> None:
    result = anabranch("flow-run", "ls", "--flow", "etl")

    assert "brave-otter" in result.stdout and "lazy-newt" in result.stdout
    assert "swift-fox" not in result.stdout
    assert "No flow runs match" in anabranch("flow-run", "ls", "--flow", "nope").stderr
