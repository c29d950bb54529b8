"""Bad input gets a 4xx naming the problem, and the HTTP client raises what embedded would."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from anabranch.client.http import HTTPClient
from anabranch.exceptions import (
    AnabranchError,
    ConcurrencySlotError,
    InvalidConcurrencyLimit,
    InvalidStateTransition,
    ObjectNotFound,
    UnknownConcurrencyLimit,
)
from anabranch.orchestration.transitions import refusal
from anabranch.schemas import FlowRun, RecordBatch, SlotRequest, State, StateRecord, StateType
from server_harness import Server


def post(server: Server, path: str, **options) -> httpx.Response:
    return httpx.post(f"{server.url}/{path}", timeout=10, **options)


def test_malformed_json_is_a_422_saying_so(server: Server) -> None:
    json_type = {"Content-Type": "application/json"}
    answer = post(server, "batches", content=b"{not json", headers=json_type)

    assert answer.status_code == 422
    assert "Invalid JSON" in answer.text


def test_a_wrong_type_is_a_422_naming_the_field(server: Server) -> None:
    answer = post(server, "batches", json={"flow_runs": [{"name": "x", "flow_name": 3}]})

    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "flow_runs", 0, "flow_name"]


def test_a_naive_timestamp_is_a_400_saying_to_pass_a_time_zone(server: Server) -> None:
    run = {"name": "x", "flow_name": "f", "created": "2025-01-01T00:00:00"}
    answer = post(server, "batches", json={"flow_runs": [run]})

    assert answer.status_code == 400
    assert "timezone-aware" in answer.json()["detail"]


def test_a_malformed_id_is_a_422_naming_the_path_parameter(server: Server) -> None:
    answer = httpx.get(f"{server.url}/flow_runs/not-a-uuid")

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["path", "flow_run_id"]


def test_an_unknown_state_type_filter_is_a_422_listing_the_choices(server: Server) -> None:
    answer = httpx.get(f"{server.url}/flow_runs", params={"state_types": "SLEEPY"})

    assert answer.status_code == 422
    assert "COMPLETED" in answer.text


def test_an_unknown_id_is_a_404_naming_it(server: Server) -> None:
    missing = uuid.uuid4()
    for path in (f"flow_runs/{missing}", f"task_runs/{missing}"):
        answer = httpx.get(f"{server.url}/{path}")
        assert answer.status_code == 404
        assert str(missing) in answer.json()["detail"]


def test_a_negative_limit_is_a_400_with_the_rule(server: Server) -> None:
    answer = post(server, "concurrency_limits", json={"name": "neg", "limit": -1})

    assert answer.status_code == 400
    assert "needs a limit of 0 or more" in answer.json()["detail"]


def test_a_naive_waiter_time_is_a_400_naming_the_request(server: Server) -> None:
    request = {"names": ["x"], "holder": "me", "since": "2025-01-01T00:00:00"}
    answer = post(server, "concurrency/acquire", json=[request])

    assert answer.status_code == 400
    assert "requests[0].since" in answer.json()["detail"]


def test_renewing_for_negative_time_is_a_400_naming_the_rule(server: Server) -> None:
    # Zero is allowed, as on the embedded store: it ends the leases now.
    answer = post(server, "concurrency/leases/renew", json={"lease_ids": [], "seconds": -1})

    assert answer.status_code == 400
    assert answer.json()["error"] == "ConcurrencySlotError"
    assert "renewed for 0 seconds or more, not -1" in answer.json()["detail"]


def test_the_client_raises_object_not_found_with_the_servers_message(
    client: HTTPClient,
) -> None:
    missing = uuid.uuid4()

    with pytest.raises(ObjectNotFound, match=str(missing)):
        client.read_flow_run(missing)
    with pytest.raises(ObjectNotFound, match="flow-run inspect"):
        client.read_task_run(missing)


def test_the_client_raises_unknown_concurrency_limit_with_the_create_hint(
    client: HTTPClient,
) -> None:
    for call in (
        lambda: client.read_concurrency_limit("no/such limit"),
        lambda: client.update_concurrency_limit("no/such limit", limit=3),
        lambda: client.reset_concurrency_limit("no/such limit"),
        lambda: client.delete_concurrency_limit("no/such limit"),
    ):
        with pytest.raises(UnknownConcurrencyLimit, match="concurrency-limit create"):
            call()


def test_the_client_raises_a_value_error_for_a_broken_limit_rule(client: HTTPClient) -> None:
    with pytest.raises(InvalidConcurrencyLimit, match="0 or more") as caught:
        client.create_concurrency_limit("broken", -5)

    assert isinstance(caught.value, ValueError)


def test_a_strict_request_for_a_missing_limit_is_answered_with_its_error(
    client: HTTPClient,
) -> None:
    (grant,) = client.acquire_concurrency_slots([SlotRequest(names=["absent"], holder="t")])

    assert not grant.granted
    assert grant.error is not None and "No concurrency limit named 'absent'" in grant.error


def test_an_api_url_without_the_api_prefix_is_explained(server: Server) -> None:
    client = HTTPClient(server.url.removesuffix("/api"))

    with pytest.raises(AnabranchError, match="end in /api"):
        client.read_flow_runs()
    client.close()


def test_the_client_raises_a_slot_error_for_a_refused_slot_request(client: HTTPClient) -> None:
    with pytest.raises(ConcurrencySlotError, match="seconds") as caught:
        client.renew_concurrency_leases([], -1)

    assert isinstance(caught.value, ValueError)


def test_a_time_bound_without_a_time_zone_is_a_400_naming_it(server: Server) -> None:
    answer = httpx.get(f"{server.url}/flow_runs", params={"started_after": "2025-03-01T12:00:00"})

    assert answer.status_code == 400
    assert "started_after=2025-03-01T12:00:00 has no time zone" in answer.json()["detail"]


def _completed_run_and_a_straggler() -> tuple[FlowRun, RecordBatch, FlowRun]:
    """A Completed flow run, and a batch moving it back to Running along with another run."""
    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
    done = FlowRun(name=f"done-{uuid.uuid4().hex[:6]}", flow_name="etl", created=t0)
    done.state = State(type=StateType.COMPLETED, name="Completed", timestamp=t0)
    straggler = done.model_copy()
    straggler.state = State(
        type=StateType.RUNNING, name="Running", timestamp=t0 + timedelta(seconds=1)
    )
    other = FlowRun(name=f"other-{uuid.uuid4().hex[:6]}", flow_name="etl", created=t0)
    other.state = State(type=StateType.RUNNING, name="Running", timestamp=t0)
    batch = RecordBatch(
        flow_runs=[straggler, other],
        states=[
            StateRecord(run_id=done.id, state=straggler.state),
            StateRecord(run_id=other.id, state=other.state),
        ],
    )
    return done, batch, other


def test_a_final_run_moved_back_is_a_409_naming_the_rule_and_the_rest_is_stored(
    server: Server, client: HTTPClient
) -> None:
    done, batch, other = _completed_run_and_a_straggler()
    client.write_batch(RecordBatch(flow_runs=[done]))

    answer = post(
        server,
        "batches",
        content=batch.model_dump_json(),
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 409
    body = answer.json()
    assert "final states are final" in body["detail"]
    assert str(done.id) in body["detail"]
    assert "The rest of the batch was stored" in body["detail"]
    assert body["refused"] == [
        {"run_id": str(done.id), "rule": refusal(StateType.COMPLETED, StateType.RUNNING)}
    ]
    assert client.read_flow_run(done.id).state == done.state
    assert [r.state.type for r in client.read_states(done.id)] == []
    assert client.read_flow_run(other.id).state == other.state


def test_the_client_raises_invalid_state_transition_naming_the_runs(client: HTTPClient) -> None:
    done, batch, other = _completed_run_and_a_straggler()
    client.write_batch(RecordBatch(flow_runs=[done]))
    before = client.statistics()["requests"]

    with pytest.raises(InvalidStateTransition, match="final states are final") as caught:
        client.write_batch(batch)

    assert caught.value.refused == [(done.id, refusal(StateType.COMPLETED, StateType.RUNNING))]
    assert isinstance(caught.value, ValueError)
    assert client.statistics()["requests"] == before + 1  # a refusal is not retried
    assert client.read_flow_run(done.id).state == done.state
    assert client.read_flow_run(other.id).state == other.state
