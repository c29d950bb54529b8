"""Dispatch on real SQLite and PostgreSQL stores: what a worker's poll is handed. Limits of
pools, queues and deployments hold across workers; runs blocked on a full deployment never
hold up the runs of others; due runs go out by queue priority, then scheduled time."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

from anabranch import _clock
from anabranch.client.embedded import EmbeddedClient
from anabranch.database import write_transaction
from anabranch.orchestration.zombies import crash_zombies
from anabranch.schemas import FlowRun, StateType
from anabranch.schemas.deployments import Deployment, DeploymentRunRequest, WorkerPoll


def deploy(store: EmbeddedClient, name: str, pool: str = "pool", **fields: Any) -> Deployment:
    store.create_work_pool(pool)
    return store.save_deployment(
        Deployment(name="dev", flow_name=name, entrypoint="flows.py:f", work_pool_name=pool,
                   **fields)
    )


def queue_runs(
    store: EmbeddedClient, dep: Deployment, count: int, *, minutes_ago: int = 0, **fields: Any
) -> list[FlowRun]:
    at = _clock.now() - timedelta(minutes=minutes_ago)
    return [
        store.create_flow_run_from_deployment(
            dep.id, DeploymentRunRequest(scheduled_time=at - timedelta(seconds=i), **fields)
        )
        for i in range(count)
    ]


def poll(store: EmbeddedClient, worker: str = "w", limit: int = 10, **fields: Any) -> list[FlowRun]:
    answer = store.poll_work("pool", WorkerPoll(worker_name=worker, limit=limit, **fields))
    return [dispatched.flow_run for dispatched in answer.runs]


def test_a_full_deployment_does_not_hold_up_the_runs_of_another(store: EmbeddedClient) -> None:
    busy = deploy(store, "busy", concurrency_limit=1)
    other = deploy(store, "other")
    queue_runs(store, busy, 5, minutes_ago=10)  # older: first in scheduled order
    (late_comer,) = queue_runs(store, other, 1)

    taken = poll(store)

    assert sorted(run.flow_name for run in taken) == ["busy", "other"]
    assert late_comer.id in {run.id for run in taken}
    assert poll(store) == []  # busy's other four wait for its one slot


def test_waiting_runs_start_in_order_of_their_scheduled_time(store: EmbeddedClient) -> None:
    dep = deploy(store, "ordered", concurrency_limit=1)
    now = _clock.now()
    for minutes in (3, 9, 1, 5):
        store.create_flow_run_from_deployment(
            dep.id,
            DeploymentRunRequest(
                scheduled_time=now - timedelta(minutes=minutes), flow_run_name=f"m{minutes}"
            ),
        )
    order = []
    for _ in range(4):
        (run,) = poll(store)
        order.append(run.name)
        store.report_process_exit(run.id, 0)  # it ends (Crashed: it never ran) and frees
    assert order == ["m9", "m5", "m3", "m1"]


def test_queue_priority_comes_before_scheduled_time(store: EmbeddedClient) -> None:
    store.create_work_pool("pool", concurrency_limit=1)
    store.create_work_queue("urgent", work_pool_name="pool", priority=1)
    store.create_work_queue("batch", work_pool_name="pool", priority=5)
    dep = deploy(store, "prioritised")
    queue_runs(store, dep, 1, minutes_ago=60, work_queue_name="batch")
    (urgent,) = queue_runs(store, dep, 1, work_queue_name="urgent")

    assert [run.id for run in poll(store)] == [urgent.id]


def test_future_runs_and_paused_pools_are_not_handed_out(store: EmbeddedClient) -> None:
    dep = deploy(store, "later")
    store.create_flow_run_from_deployment(
        dep.id, DeploymentRunRequest(scheduled_time=_clock.now() + timedelta(hours=1))
    )
    assert poll(store) == []
    queue_runs(store, dep, 1)
    store.update_work_pool("pool", paused=True)
    assert poll(store) == []
    store.update_work_pool("pool", paused=False)
    assert len(poll(store)) == 1


def test_pool_and_queue_limits_hold_across_workers_polling_at_once(
    store: EmbeddedClient,
) -> None:
    store.create_work_pool("pool", concurrency_limit=7)
    store.create_work_queue("narrow", work_pool_name="pool", concurrency_limit=3)
    dep = deploy(store, "crowded")
    queue_runs(store, dep, 20)
    queue_runs(store, dep, 20, work_queue_name="narrow")
    taken: list[FlowRun] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        runs = poll(store, worker=name, limit=5)
        with lock:
            taken.extend(runs)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(taken) == 7
    assert len({run.id for run in taken}) == 7
    assert sum(run.work_queue_name == "narrow" for run in taken) <= 3
    assert store.read_work_pool("pool").active_runs == 7


def test_an_idempotency_key_returns_the_existing_run(store: EmbeddedClient) -> None:
    dep = deploy(store, "once")
    key = f"order-{uuid.uuid4()}"
    first = store.create_flow_run_from_deployment(dep.id, DeploymentRunRequest(idempotency_key=key))
    again = store.create_flow_run_from_deployment(dep.id, DeploymentRunRequest(idempotency_key=key))

    assert again.id == first.id
    assert len(store.read_flow_runs(flow_name="once")) == 1


def test_a_run_handed_to_a_worker_that_went_silent_goes_back_to_the_queue(
    store: EmbeddedClient,
) -> None:
    dep = deploy(store, "lost")
    (run,) = queue_runs(store, dep, 1)
    assert [r.id for r in poll(store, worker="gone")] == [run.id]

    with write_transaction(store.database_url) as conn:
        crash_zombies(conn, now=_clock.now() + timedelta(minutes=5), silent_for=30)

    again = store.read_flow_run(run.id)
    assert again.state.type is StateType.SCHEDULED and again.worker_name is None
    assert [r.id for r in poll(store, worker="alive")] == [run.id]


def test_the_first_worker_s_late_exit_report_leaves_the_second_worker_s_run_alone(
    store: EmbeddedClient,
) -> None:
    dep = deploy(store, "handed-over")
    (run,) = queue_runs(store, dep, 1)
    poll(store, worker="silent")
    with write_transaction(store.database_url) as conn:
        crash_zombies(conn, now=_clock.now() + timedelta(minutes=5), silent_for=30)
    poll(store, worker="alive")

    store.report_process_exit(run.id, 1, worker_name="silent")
    kept = store.read_flow_run(run.id)
    assert (kept.state.type, kept.worker_name) == (StateType.PENDING, "alive")

    store.report_process_exit(run.id, 1, worker_name="alive")
    assert store.read_flow_run(run.id).state.type is StateType.CRASHED


def test_a_run_is_claimed_once_and_a_claimed_run_is_crashed_not_requeued(
    store: EmbeddedClient,
) -> None:
    dep = deploy(store, "claimed")
    (run,) = queue_runs(store, dep, 1)
    poll(store, worker="w")

    assert store.claim_flow_run(run.id, process_id=101, worker_name="w")
    assert not store.claim_flow_run(run.id, process_id=102, worker_name="w")
    with write_transaction(store.database_url) as conn:
        crash_zombies(conn, now=_clock.now() + timedelta(minutes=5), silent_for=30)

    crashed = store.read_flow_run(run.id)
    assert (crashed.state.type, crashed.infrastructure_pid) == (StateType.CRASHED, 101)


def test_a_run_handed_to_another_worker_can_not_be_claimed_by_the_first(
    store: EmbeddedClient,
) -> None:
    dep = deploy(store, "handed-on")
    (run,) = queue_runs(store, dep, 1)
    poll(store, worker="slow")
    with write_transaction(store.database_url) as conn:
        crash_zombies(conn, now=_clock.now() + timedelta(minutes=5), silent_for=30)

    assert not store.claim_flow_run(run.id, process_id=101, worker_name="slow")  # Scheduled
    poll(store, worker="next")
    assert not store.claim_flow_run(run.id, process_id=101, worker_name="slow")
    assert store.claim_flow_run(run.id, process_id=202, worker_name="next")


def test_a_run_cancelled_before_its_process_claims_it_is_not_started(
    store: EmbeddedClient,
) -> None:
    dep = deploy(store, "cancelled-early")
    (run,) = queue_runs(store, dep, 1)
    poll(store, worker="w")
    store.cancel_flow_run(run.id)

    assert not store.claim_flow_run(run.id, process_id=101, worker_name="w")
    store.report_process_exit(run.id, 0, worker_name="w")
    assert store.read_flow_run(run.id).state.type is StateType.CANCELLED
