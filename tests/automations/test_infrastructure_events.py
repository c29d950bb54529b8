"""Workers coming online and going offline, and deployments created, paused and resumed,
are events too."""

from __future__ import annotations

from datetime import timedelta

import pytest

from anabranch import _clock
from anabranch.client import get_client
from anabranch.database import write_transaction
from anabranch.orchestration.work_pools import WORKER_ONLINE_SECONDS, mark_workers_offline
from anabranch.schemas.deployments import Deployment, WorkerPoll
from anabranch.settings import get_settings

pytestmark = pytest.mark.embedded_only


def names(pattern: str) -> list[str]:
    return [e.event for e in get_client().read_events(event_names=[pattern]).events]


def test_a_worker_is_told_online_once_offline_once_and_online_again() -> None:
    client = get_client()
    client.create_work_pool("pool")
    poll = WorkerPoll(worker_name="w1")
    client.poll_work("pool", poll)
    client.poll_work("pool", poll)
    assert names("anabranch.worker.*") == ["anabranch.worker.online"]

    later = _clock.now() + timedelta(seconds=WORKER_ONLINE_SECONDS + 1)
    for _ in range(2):
        with write_transaction(get_settings().resolved_database_url) as conn:
            mark_workers_offline(conn, now=later)
    assert names("anabranch.worker.*") == ["anabranch.worker.online", "anabranch.worker.offline"]

    client.poll_work("pool", poll)
    (back,) = get_client().read_events(event_names=["anabranch.worker.*"], newest_first=True,
                                       limit=1).events
    assert back.event == "anabranch.worker.online"
    assert back.resource.id == "anabranch.worker.pool/w1"
    assert back.related_in("work-pool")[0].name == "pool"


def test_a_deployment_created_paused_and_resumed_is_told() -> None:
    client = get_client()
    deployment = client.save_deployment(
        Deployment(name="nightly", flow_name="etl", entrypoint="etl.py:etl")
    )
    client.set_deployment_paused(deployment.id, True)
    client.set_deployment_paused(deployment.id, True)  # no change, nothing told
    client.set_deployment_paused(deployment.id, False)
    assert names("anabranch.deployment.*") == [
        "anabranch.deployment.created", "anabranch.deployment.paused",
        "anabranch.deployment.resumed",
    ]
    (created,) = client.read_events(event_names=["anabranch.deployment.created"]).events
    assert created.resource.name == "etl/nightly"
    assert created.related_in("flow")[0].name == "etl"
