"""Concurrency limits through the server: managed over HTTP, enforced across processes."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from anabranch.client.http import HTTPClient
from anabranch.schemas import SlotRequest
from server_harness import Server, clean_env


def test_limits_are_created_read_changed_reset_and_deleted_over_http(
    client: HTTPClient,
) -> None:
    name = f"db/{uuid.uuid4().hex[:6]} writes"  # a slash and a space travel too

    created = client.create_concurrency_limit(name, 2)
    assert (created.name, created.limit, created.active) == (name, 2, True)
    (grant,) = client.acquire_concurrency_slots([SlotRequest(names=[name], holder="me")])
    assert grant.granted and grant.lease_id is not None

    held = client.read_concurrency_limit(name)
    assert held.active_slots == 1 and [h.holder for h in held.holders] == ["me"]
    assert name in {limit.name for limit in client.read_concurrency_limits()}
    assert client.update_concurrency_limit(name, limit=5, slot_decay_per_second=0.5).limit == 5
    unknown = uuid.uuid4()
    assert client.renew_concurrency_leases([grant.lease_id, unknown], 60) == [unknown]
    assert client.reset_concurrency_limit(name).active_slots == 0
    assert client.release_concurrency_slots(grant.lease_id) is False  # the reset ended it
    client.delete_concurrency_limit(name)
    assert name not in {limit.name for limit in client.read_concurrency_limits()}


def test_a_full_limit_queues_a_waiter_until_it_is_withdrawn(client: HTTPClient) -> None:
    name = f"one-{uuid.uuid4().hex[:6]}"
    client.create_concurrency_limit(name, 1)
    first, second = (SlotRequest(names=[name], holder=h) for h in ("first", "second"))

    (granted,) = client.acquire_concurrency_slots([first])
    (waiting,) = client.acquire_concurrency_slots([second])

    assert granted.granted and not waiting.granted
    assert waiting.waiting_for is not None and name in waiting.waiting_for
    assert client.read_concurrency_limit(name).waiting == 1
    client.withdraw_concurrency_waiter(second.waiter_id)
    assert client.read_concurrency_limit(name).waiting == 0
    assert client.reap_concurrency_leases() >= 0


CONTENDER = Path(__file__).with_name("contender.py")


def test_a_limit_holds_across_four_processes_running_flows(
    api: Server, client: HTTPClient, tmp_path: Path
) -> None:
    limit, name = 2, f"shared-{uuid.uuid4().hex[:6]}"
    client.create_concurrency_limit(name, limit)
    counter = tmp_path / "counter.json"
    counter.write_text("[0, 0]")
    env = clean_env(ANABRANCH_API_URL=api.url, ANABRANCH_HOME=str(tmp_path / "home"))

    workers = [
        subprocess.Popen(
            [sys.executable, str(CONTENDER), str(counter), name, mode],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for mode in ("tags", "context", "tags", "context")
    ]
    outcomes = [worker.communicate(timeout=180) for worker in workers]

    assert [w.returncode for w in workers] == [0] * 4, outcomes
    assert all(out.strip().endswith("done") for out, _ in outcomes)
    in_use, peak = json.loads(counter.read_text())
    assert in_use == 0
    assert 1 <= peak <= limit
    assert client.read_concurrency_limit(name).active_slots == 0
