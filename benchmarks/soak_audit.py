"""The soak's accounting: what the driver processes say they created, against what the
PostgreSQL database holds once everything has been delivered.

A run is **lost** when a driver created it (its id came back from a future, or, for a
deployment child, the driver chose its idempotency key and the call did not fail before
the server took it) and the database, at the end, does not hold it; and every run the
database holds in a state that is not final is lost too, since with the drivers stopped,
the spools delivered and the server's crash detection given time, none should be. A run
the database holds in another final state than the driver saw it end in is a
**mismatch** (a run the driver saw Completed and the server later marked Crashed, say).
Runs the database holds that no driver named are **unaccounted**; the task runs of
deployment children, which the children's own processes create, are counted apart.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "CRASHED"})
NOT_FINAL = ("SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING")
EXAMPLES = 5


def driver_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON lines a driver printed (anything else on its stdout is skipped)."""
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("{"):
                try:
                    yield json.loads(line)
                except ValueError:
                    continue  # a line cut short by a killed driver


class Created:
    """Every run the drivers created, with the state each driver saw it end in."""

    def __init__(self) -> None:
        self.flows: dict[str, str | None] = {}  # parents and subflows: id -> state seen
        self.parents = 0
        self.subflows = 0
        self.tasks: dict[str, str] = {}
        self.children: dict[str, dict[str, Any]] = {}  # idempotency key -> what was seen
        self.calls: Counter[str] = Counter()
        self.call_errors: Counter[str] = Counter()
        self.call_seconds: dict[str, list[float]] = {}
        self.unknown_parents = 0  # flow calls whose body never noted its id
        self.done: dict[str, dict[str, Any]] = {}

    def add(self, line: dict[str, Any]) -> None:
        if line.get("done"):
            self.done[line["kind"]] = line
            return
        kind = line["kind"]
        self.calls[kind] += 1
        self.call_seconds.setdefault(kind, []).append(line["seconds"])
        if line.get("error"):
            self.call_errors[line["error"].split(":", 1)[0]] += 1
        flow = line["flow"]
        if flow["id"] is None:
            self.unknown_parents += 1
        else:
            self.flows[flow["id"]] = flow["state"]
            self.parents += 1
        for run_id, state in line["subflows"].items():
            self.flows[run_id] = state
            self.subflows += 1
        for state, ids in line["tasks"].items():
            for run_id in ids:
                self.tasks[run_id] = state
        for child in line["children"]:
            self.children[child["key"]] = child


def read_created(paths: list[Path]) -> Created:
    created = Created()
    for path in paths:
        for line in driver_lines(path):
            created.add(line)
    return created


def _rows(conn: Any, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return list(conn.execute(sql, params).fetchall())


def _check(
    seen: dict[str, str | None], held: dict[str, tuple[Any, ...]], what: str
) -> tuple[dict[str, Any], int]:
    """Hold what the drivers saw against what the database holds, for one kind of run; the
    figures, and how many were missing."""
    missing, not_final, mismatch = [], [], []
    for run_id, state_seen in seen.items():
        row = held.get(run_id)
        if row is None:
            missing.append(run_id)
        elif row[0] not in FINAL:
            not_final.append(f"{run_id} {row[0]} (driver saw {state_seen})")
        elif state_seen in FINAL and row[0] != state_seen:
            mismatch.append(f"{run_id}: driver saw {state_seen}, database {row[0]}: {row[1]}")
    return {
        f"{what}_missing": len(missing),
        f"{what}_not_final": len(not_final),
        f"{what}_mismatched": len(mismatch),
        f"{what}_examples": missing[:EXAMPLES] + not_final[:EXAMPLES] + mismatch[:EXAMPLES],
    }, len(missing)


def audit(conn: Any, created: Created, pool: str) -> dict[str, Any]:
    """Every count the soak reports about runs, from one connection to its database.

    Lost = runs a driver knows it created that the database lacks, plus every run the
    database holds unfinished: with the drivers stopped and everything settled and
    delivered, nothing should be (a run whose creation raised in the driver, so that the
    driver never learnt its id, is still caught this way)."""
    flows = {
        str(r[0]): r[1:]
        for r in _rows(conn, "SELECT id, state_type, state_message, flow_name, "
                       "idempotency_key, deployment_id FROM flow_run")
    }
    tasks = {
        str(r[0]): (r[1], r[2], str(r[3]) if r[3] else None, r[4])
        for r in _rows(conn, "SELECT id, state_type, state_message, flow_run_id, name "
                       "FROM task_run")
    }
    by_key = {row[3]: (run_id, row) for run_id, row in flows.items() if row[3]}
    children_held: dict[str, tuple[Any, ...]] = {}
    children_seen: dict[str, str | None] = {}
    never_created: Counter[str] = Counter()
    child_id_mismatch = 0
    for key, child in created.children.items():
        found = by_key.get(key)
        if found is None and child.get("id") is None and child.get("error"):
            # The call failed before the server took the creation: nothing to lose.
            never_created[child["error"].split(" (")[0][:160]] += 1
            continue
        children_seen[key] = child.get("state")
        if found is not None:
            children_held[key] = found[1]
            if child.get("id") and child["id"] != found[0]:
                child_id_mismatch += 1
    child_ids = {by_key[k][0] for k in created.children if k in by_key}
    deployment_runs = {run_id for run_id, row in flows.items() if row[4] is not None}

    figures: dict[str, Any] = {
        "created": {
            "flow_calls": dict(created.calls),
            "flow_calls_with_error": dict(created.call_errors),
            "flow_runs": created.parents + created.subflows + len(children_seen),
            "parent_flow_runs": created.parents,
            "subflow_runs": created.subflows,
            "deployment_children": len(children_seen),
            "deployment_calls_that_created_nothing": dict(never_created),
            "task_runs": len(created.tasks),
            "flow_calls_without_an_id": created.unknown_parents,
        },
        "database": {
            "flow_runs": len(flows),
            "task_runs": len(tasks),
            "flow_runs_by_state": dict(Counter(row[0] for row in flows.values())),
            "task_runs_by_state": dict(Counter(row[0] for row in tasks.values())),
            "flow_runs_by_flow_and_state": _by_flow_and_state(flows),
        },
    }
    lost: dict[str, Any] = {}
    missing = 0
    for seen, held, what in (
        (created.flows, flows, "flow_runs"),
        (created.tasks, tasks, "task_runs"),
        (children_seen, children_held, "deployment_children"),
    ):
        checked, count = _check(seen, held, what)
        lost.update(checked)
        missing += count
    lost["deployment_children_id_differs_from_key"] = child_id_mismatch
    unfinished_flows = [(i, r) for i, r in flows.items() if r[0] not in FINAL]
    unfinished_tasks = [(i, r) for i, r in tasks.items() if r[0] not in FINAL]
    lost["database_flow_runs_not_final"] = len(unfinished_flows)
    lost["database_task_runs_not_final"] = len(unfinished_tasks)
    lost["database_not_final_examples"] = [
        f"flow run {i} {r[2]!r} {r[0]}" for i, r in unfinished_flows[:EXAMPLES]
    ] + [
        f"task run {i} {r[3]!r} {r[0]}, its flow run {r[2]} "
        f"{flows.get(r[2], ('missing',))[0]} ({flows.get(r[2], (0, 0, '?'))[2]})"
        for i, r in unfinished_tasks[:EXAMPLES]
    ]
    lost["total"] = missing + len(unfinished_flows) + len(unfinished_tasks)
    figures["lost"] = lost

    known_flows = set(created.flows) | child_ids
    child_tasks = [row for row in tasks.values() if row[2] in deployment_runs]
    figures["unaccounted"] = {
        "flow_runs": sum(1 for run_id in flows if run_id not in known_flows),
        "task_runs": sum(
            1 for run_id, row in tasks.items()
            if run_id not in created.tasks and row[2] not in deployment_runs
        ),
        "deployment_children_task_runs": len(child_tasks),
        "deployment_children_task_runs_by_state": dict(Counter(row[0] for row in child_tasks)),
    }
    figures["crashed"] = _crashed(flows, tasks, child_ids)
    figures["pool_runs_holding_slots"] = _rows(
        conn, "SELECT count(*) FROM flow_run WHERE work_pool_name = %s AND state_type IN "
        "('PENDING', 'RUNNING', 'CANCELLING')", pool,
    )[0][0]
    figures["concurrency_tables"] = _concurrency_tables(conn)
    return figures


def _by_flow_and_state(flows: dict[str, tuple[Any, ...]]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter[str]] = {}
    for row in flows.values():
        table.setdefault(row[2], Counter())[row[0]] += 1
    return {name: dict(counts) for name, counts in sorted(table.items())}


def _crashed(
    flows: dict[str, tuple[Any, ...]], tasks: dict[str, tuple[Any, ...]], child_ids: set[str]
) -> dict[str, Any]:
    """Crashed runs, the expected ones (deployment children, whose worker was killed) apart
    from the others (drivers are never killed: a Crashed driver run is a finding)."""
    crashed_children = [r for i, r in flows.items() if r[0] == "CRASHED" and i in child_ids]
    crashed_other = [
        (i, r) for i, r in flows.items() if r[0] == "CRASHED" and i not in child_ids
    ]
    crashed_tasks = [r for r in tasks.values() if r[0] == "CRASHED"]
    return {
        "deployment_children": len(crashed_children),
        "deployment_children_messages": _messages(r[1] for r in crashed_children),
        "driver_flow_runs": len(crashed_other),
        "driver_flow_runs_messages": _messages(r[1] for _, r in crashed_other),
        "driver_flow_runs_examples": [f"{i} {r[2]}" for i, r in crashed_other[:EXAMPLES]],
        "task_runs": len(crashed_tasks),
        "task_runs_messages": _messages(r[1] for r in crashed_tasks),
    }


def _messages(messages: Any) -> dict[str, int]:
    """The most common state messages, with run ids and times cut out so they group."""
    counts: Counter[str] = Counter()
    for message in messages:
        text = (message or "").split(" since ")[0][:160]
        counts[text] += 1
    return dict(counts.most_common(EXAMPLES))


def _concurrency_tables(conn: Any) -> dict[str, Any]:
    leases = _rows(
        conn,
        "SELECT l.name, coalesce(sum(s.occupy), 0), "
        "coalesce(sum(s.occupy) FILTER (WHERE e.expires_at > now()), 0) "
        "FROM concurrency_limit l LEFT JOIN concurrency_lease_slot s ON s.limit_id = l.id "
        "LEFT JOIN concurrency_lease e ON e.id = s.lease_id GROUP BY l.name",
    )
    waiters = _rows(conn, "SELECT count(*) FROM concurrency_waiter")[0][0]
    return {
        "slots_in_leases": {name: int(total) for name, total, _ in leases},
        "slots_in_unexpired_leases": {name: int(live) for name, _, live in leases},
        "leases": _rows(conn, "SELECT count(*) FROM concurrency_lease")[0][0],
        "waiters": waiters,
    }
