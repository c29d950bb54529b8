"""The store's operations are declared once and reached alike through every transport: each
is a method of the embedded, HTTP and async clients and a route of the server, and an error
the store raises arrives as the same class with the same message whichever way it was asked.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from anabranch import exceptions
from anabranch.client.aio import AsyncEmbeddedClient
from anabranch.client.embedded import EmbeddedClient
from anabranch.client.http import AsyncHTTPClient, HTTPClient
from anabranch.operations import OPERATIONS
from anabranch.schemas import FlowRun, RecordBatch, State, StateType
from anabranch.schemas.automations import AutomationSpec, CallWebhook, EventTrigger
from anabranch.schemas.deployments import Deployment, DeploymentRunRequest
from server_harness import Server

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_every_operation_is_a_method_of_every_client() -> None:
    for client in (EmbeddedClient, HTTPClient, AsyncEmbeddedClient, AsyncHTTPClient):
        for op in OPERATIONS:
            method = getattr(client, op.name)
            assert method.operation is op, (client, op.name)
            assert method.__doc__ == op.stub.__doc__


def test_the_api_document_lists_every_operation(server: Server) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    routes = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
    }
    for op in OPERATIONS:
        path = "/api" + op.path.replace(":path}", "}")
        assert (op.method, path) in routes, op.name
        route = document["paths"][path][op.method.lower()]
        assert route["description"] == op.doc


# One call that raises each error an operation declares, on a fresh store.
Scenario = Callable[[Any], Any]


def _finished_run(client: Any) -> FlowRun:
    run = FlowRun(name=f"done-{uuid.uuid4().hex[:8]}", flow_name="etl", created=T0)
    run.state = State(type=StateType.COMPLETED, name="Completed", timestamp=T0)
    client.write_batch(RecordBatch(flow_runs=[run]))
    return run


def _back_to_running(client: Any) -> None:
    run = _finished_run(client)
    run.state = State(type=StateType.RUNNING, name="Running", timestamp=T0.replace(hour=13))
    client.write_batch(RecordBatch(flow_runs=[run]))


def _unknown_parameter(client: Any) -> None:
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    client.create_work_pool(pool)
    saved = client.save_deployment(
        Deployment(
            name="dev", flow_name=f"flow-{uuid.uuid4().hex[:8]}", work_pool_name=pool,
            entrypoint="flows.py:etl",
            parameter_schema={"type": "object", "properties": {"x": {"type": "integer"}}},
        )
    )
    client.create_flow_run_from_deployment(
        saved.id, DeploymentRunRequest(parameters={"x": "not a number"})
    )


def _second_automation_of_a_name(client: Any) -> None:
    spec = AutomationSpec(
        name=f"twice-{uuid.uuid4().hex[:8]}",
        trigger=EventTrigger(expect={"anabranch.flow-run.Failed"}),
        actions=[CallWebhook(url="http://127.0.0.1:9/hook")],
    )
    client.create_automation(spec)
    client.create_automation(spec)


SCENARIOS: dict[type[Exception], Scenario] = {
    exceptions.ObjectNotFound: lambda c: c.read_flow_run(uuid.UUID(int=7)),
    exceptions.UnknownConcurrencyLimit: lambda c: c.read_concurrency_limit("no such limit"),
    exceptions.InvalidConcurrencyLimit: lambda c: c.create_concurrency_limit("broken", -5),
    exceptions.ConcurrencySlotError: lambda c: c.renew_concurrency_leases([], -1),
    exceptions.InvalidStateTransition: _back_to_running,
    exceptions.RunAlreadyFinal: lambda c: c.cancel_flow_run(_finished_run(c).id),
    exceptions.InvalidName: lambda c: c.create_work_pool(".."),
    exceptions.InvalidDeployment: lambda c: c.save_deployment(
        Deployment(name="..", flow_name="etl", entrypoint="flows.py:etl")
    ),
    exceptions.InvalidParameters: _unknown_parameter,
    exceptions.ObjectAlreadyExists: _second_automation_of_a_name,
}


def test_every_declared_error_has_a_scenario_here() -> None:
    declared = {error for op in OPERATIONS for error in op.errors}
    assert declared <= SCENARIOS.keys(), declared - SCENARIOS.keys()


def _raised(call: Callable[[], Any]) -> tuple[type[Exception], str]:
    with pytest.raises(Exception) as caught:
        call()
    return type(caught.value), str(caught.value)


@pytest.mark.parametrize("error", list(SCENARIOS), ids=lambda error: error.__name__)
def test_an_error_of_the_store_arrives_as_itself_through_every_transport(
    error: type[Exception], client: HTTPClient, tmp_path: Path
) -> None:
    scenario = SCENARIOS[error]
    embedded = EmbeddedClient(f"sqlite:///{tmp_path / 'embedded.db'}")

    async def awaited() -> tuple[type[Exception], str]:
        async with client as aclient:
            with pytest.raises(Exception) as caught:
                await _awaited_scenario(scenario, aclient)
        return type(caught.value), str(caught.value)

    in_process = _raised(lambda: scenario(embedded))
    over_http = _raised(lambda: scenario(client))
    over_async = asyncio.run(awaited())

    assert in_process[0] is error, in_process
    assert over_http[0] is error and over_async[0] is error, (over_http, over_async)
    # The same words, but for the names the scenario made up.
    assert _shape(over_http[1]) == _shape(in_process[1]) == _shape(over_async[1])


def _shape(message: str) -> str:
    """The message with the made-up names and ids of one run of a scenario left out."""
    return _MADE_UP.sub("*", message)


_MADE_UP = re.compile(r"\S*[0-9a-f]{8}\S*")


async def _awaited_scenario(scenario: Scenario, aclient: Any) -> Any:
    """Run a sync scenario against an async client: each call is awaited in turn."""
    return await asyncio.to_thread(scenario, _Blocking(aclient, asyncio.get_running_loop()))


class _Blocking:
    """An async client seen from a worker thread as a sync one (for the scenarios)."""

    def __init__(self, aclient: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._aclient, self._loop = aclient, loop

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._aclient, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            future = asyncio.run_coroutine_threadsafe(method(*args, **kwargs), self._loop)
            return future.result(timeout=60)

        return call


async def _hundred_reads_and_writes(aclient: Any) -> None:
    names = [f"gathered-{uuid.uuid4().hex[:8]}-{i}" for i in range(100)]
    made = await asyncio.gather(*(aclient.create_concurrency_limit(n, 3) for n in names))
    assert [limit.name for limit in made] == names
    read = await asyncio.gather(*(aclient.read_concurrency_limit(n) for n in names))
    assert [(limit.name, limit.limit) for limit in read] == [(n, 3) for n in names]


def test_the_async_client_gathers_a_hundred_reads_and_writes_through_a_server(
    client: HTTPClient,
) -> None:
    async def main() -> None:
        async with client as aclient:
            assert isinstance(aclient, AsyncHTTPClient)
            await _hundred_reads_and_writes(aclient)

    asyncio.run(main())


def test_the_async_client_gathers_a_hundred_reads_and_writes_on_the_embedded_store(
    tmp_path: Path,
) -> None:
    embedded = EmbeddedClient(f"sqlite:///{tmp_path / 'embedded.db'}")

    async def main() -> None:
        async with embedded as aclient:
            assert isinstance(aclient, AsyncEmbeddedClient)
            await _hundred_reads_and_writes(aclient)

    asyncio.run(main())
