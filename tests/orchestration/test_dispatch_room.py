"""Which due runs a dispatch may hand out: the room left under each limit, over plain values."""

from __future__ import annotations

import uuid

from anabranch.orchestration.dispatch import Room


def test_a_run_takes_a_slot_of_its_pool_queue_and_deployment_or_none() -> None:
    capped = uuid.uuid4()
    room = Room(pool_free=2, queue_free={"fast": 1, "slow": 5}, queue_order={"fast": 1, "slow": 2},
                deployment_free={capped: 1})

    assert room.take(capped, "slow")
    assert room.full_deployments() == [capped]
    assert not room.take(capped, "slow")  # its deployment is full
    assert room.take(uuid.uuid4(), "fast")
    assert not room.take(uuid.uuid4(), "slow")  # the pool is full
    assert room == Room(pool_free=0, queue_free={"fast": 0, "slow": 4},
                        queue_order={"fast": 1, "slow": 2}, deployment_free={capped: 0})


def test_a_full_or_closed_queue_holds_its_runs_back_but_not_the_others() -> None:
    room = Room(queue_free={"full": 0, "open": 1}, queue_order={"full": 1, "open": 1})

    assert not room.take(uuid.uuid4(), "full")
    assert not room.take(uuid.uuid4(), "paused")  # a queue not open to this poll
    assert room.take(uuid.uuid4(), "open")


def test_a_serve_process_has_no_queues_and_no_pool_limit() -> None:
    room = Room()

    assert all(room.take(uuid.uuid4(), None) for _ in range(100))
