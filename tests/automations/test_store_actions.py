"""Actions on the store, carried out by a real server: cancel or fail the run an event is
about, run, pause and resume deployments, pause the automation itself."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from anabranch import _clock
from anabranch.automations import (
    Automation,
    CancelFlowRun,
    ChangeFlowRunState,
    EventTrigger,
    PauseAutomation,
    PauseDeployment,
    RunDeployment,
)
from anabranch.client import get_client
from anabranch.schemas import FlowRun, StateType
from anabranch.schemas.deployments import Deployment, DeploymentRunRequest
from anabranch.testing import wait_until
from server_harness import Server

pytestmark = [pytest.mark.embedded_only, pytest.mark.timeout(120)]

ON_LATE = EventTrigger(expect={"anabranch.flow-run.Late"})


def late_run_of(name: str) -> tuple[Deployment, FlowRun]:
    """A deployment in a pool nobody polls, and a run of it that is late already."""
    client = get_client()
    client.create_work_pool("nobody-polls")
    deployment = client.save_deployment(
        Deployment(name=name, flow_name="etl", entrypoint="etl.py:etl",
                   work_pool_name="nobody-polls")
    )
    run = client.create_flow_run_from_deployment(
        deployment.id, DeploymentRunRequest(scheduled_time=_clock.now() - timedelta(minutes=5))
    )
    return deployment, run


def all_done(name: str) -> Callable[[], bool]:
    def done() -> bool:
        firings = get_client().read_automation_firings(automation_name=name)
        return bool(firings) and all(a.status == "done" for a in firings[0].actions)

    return done


def test_a_late_run_is_cancelled_its_deployment_paused_another_run_and_itself_paused(
    automation_server: Callable[..., Server],
) -> None:
    automation_server()
    client = get_client()
    client.save_deployment(Deployment(name="catch-up", flow_name="etl", entrypoint="etl.py:etl",
                                      work_pool_name=None))
    Automation(
        name="late runs",
        trigger=ON_LATE,
        actions=[
            CancelFlowRun(),
            PauseDeployment(),
            RunDeployment(name="etl/catch-up", parameters={}),
            PauseAutomation(),
        ],
    ).create()
    deployment, run = late_run_of("hourly")
    wait_until(all_done("late runs"), timeout=30, what="the four actions carried out")
    assert client.read_flow_run(run.id).state.type is StateType.CANCELLED
    assert client.read_deployment(deployment.id).paused is True
    catch_up = client.read_deployment_by_name("etl/catch-up")
    assert len(client.read_flow_runs(deployment_id=catch_up.id)) == 1
    assert Automation.read("late runs").enabled is False
    names = [e.event for e in client.read_events(event_names=["anabranch.deployment.*"]).events]
    assert "anabranch.deployment.paused" in names


def test_a_late_run_is_failed_with_the_message_given(
    automation_server: Callable[..., Server],
) -> None:
    automation_server()
    Automation(
        name="fail late runs",
        trigger=ON_LATE,
        actions=[ChangeFlowRunState(state=StateType.FAILED, message="Missed its slot.")],
    ).create()
    _, run = late_run_of("hourly")
    wait_until(all_done("fail late runs"), timeout=30, what="the run failed")
    state = get_client().read_flow_run(run.id).state
    assert (state.type, state.name, state.message) == (StateType.FAILED, "Failed",
                                                        "Missed its slot.")


def test_an_action_that_can_not_be_carried_out_fails_with_its_reason(
    automation_server: Callable[..., Server],
) -> None:
    automation_server(ANABRANCH_AUTOMATION_ACTION_ATTEMPTS="1")
    Automation(
        name="no such deployment",
        trigger=ON_LATE,
        actions=[RunDeployment(name="etl/missing")],
    ).create()
    late_run_of("hourly")

    def failed() -> bool:
        firings = get_client().read_automation_firings(automation_name="no such deployment")
        return bool(firings) and firings[0].actions[0].status == "failed"

    wait_until(failed, timeout=30, what="the action failed")
    (firing,) = get_client().read_automation_firings(automation_name="no such deployment")
    assert "etl/missing" in firing.actions[0].error
