"""The public API, as a snapshot: what users import and the methods of the client they call.
A change here is a change users see; make it on purpose, and update the snapshot with it."""

from __future__ import annotations

import importlib
import inspect

import pytest

from anabranch import exceptions
from anabranch.operations import OPERATIONS

EXPORTS = {
    "anabranch": [
        "AnabranchFuture", "Flow", "FlowRun", "State", "Task", "TaskRun", "allow_failure",
        "deploy", "flow", "get_client", "get_run_context", "get_run_logger", "serve", "tags",
        "task", "unmapped",
    ],
    "anabranch.automations": [
        "Action", "Automation", "AutomationFiring", "CallWebhook", "CancelFlowRun",
        "ChangeFlowRunState", "EventTrigger", "PauseAutomation", "PauseDeployment",
        "ResumeAutomation", "ResumeDeployment", "RunDeployment", "SendNotification",
    ],
    "anabranch.client": ["AnabranchClient", "get_client"],
    "anabranch.deployments": ["run_deployment"],
    "anabranch.events": ["Event", "RelatedResource", "Resource", "emit_event"],
    "anabranch.states": [
        "AwaitingRetry", "Cancelled", "Cancelling", "Completed", "Crashed", "Failed", "Late",
        "Paused", "Pending", "Retrying", "Running", "Scheduled", "State", "StateType",
        "TERMINAL_TYPES",
    ],
    "anabranch.testing": ["FakeClock", "temporary_home", "wait_until"],
}

ERRORS = [
    "AnabranchError", "CancelledRun", "ConcurrencySlotError", "ConcurrencySlotTimeout",
    "CrashedRun", "DeploymentRunFailed", "EntrypointError", "FailedRun",
    "InvalidConcurrencyLimit", "InvalidDeployment", "InvalidName", "InvalidParameters",
    "InvalidRequest", "InvalidStateTransition", "InvalidWorkPool", "MissingContextError",
    "MissingResult", "ObjectAlreadyExists", "ObjectNotFound", "ParameterTypeError",
    "RunAlreadyFinal", "RunTimeoutError", "SerializationError", "ServerUnavailable",
    "StoreUnavailable",
    "StoreUnusable", "TerminationSignal", "UnknownConcurrencyLimit", "UntrustedResultStorage",
    "UpstreamTaskError",
]

CLIENT_METHODS = [
    "emit_events(events)",
    "read_events(*, event_names=None, resource_ids=None, related_ids=None, since=None, "
    "until=None, after=None, limit=100, newest_first=False)",
    "create_automation(automation)",
    "read_automation(name)",
    "read_automations()",
    "update_automation(name, automation)",
    "set_automation_enabled(name, enabled)",
    "delete_automation(name)",
    "read_automation_firings(*, automation_name=None, flow_run_id=None, limit=50)",
    "write_batch(batch)",
    "read_flow_run(flow_run_id)",
    "read_flow_runs(*, limit=None, offset=0, state_types=None, state_names=None, "
    "flow_name=None, parent_flow_run_id=None, tags=None, started_after=None, "
    "started_before=None, created_after=None, created_before=None, root_only=False, "
    "deployment_id=None, work_pool_name=None, name_contains=None, failed_first=False, "
    "id_prefix=None)",
    "read_task_runs(*, flow_run_id=None, limit=None, offset=0, state_types=None, "
    "failed_first=False)",
    "read_task_run(task_run_id)",
    "read_states(run_id)",
    "read_logs(*, flow_run_id=None, task_run_id=None, limit=None, offset=0, min_level=0, "
    "text=None, include_subflows=False, newest_first=False)",
    "summarize_children(*, flow_run_ids, by_flow=False)",
    "read_flows(*, recent=10)",
    "read_run_changes(*, since)",
    "create_concurrency_limit(name, limit, *, active=True, slot_decay_per_second=None)",
    "read_concurrency_limit(name)",
    "read_concurrency_limits()",
    "update_concurrency_limit(name, *, limit=None, active=None, slot_decay_per_second=None)",
    "reset_concurrency_limit(name)",
    "delete_concurrency_limit(name)",
    "acquire_concurrency_slots(requests)",
    "release_concurrency_slots(lease_id)",
    "renew_concurrency_leases(lease_ids, seconds)",
    "withdraw_concurrency_waiter(waiter_id)",
    "reap_concurrency_leases()",
    "save_deployment(deployment)",
    "read_deployment(deployment_id)",
    "read_deployment_by_name(name)",
    "read_deployments(*, flow_name=None, work_pool_name=None)",
    "set_deployment_paused(deployment_id, paused)",
    "delete_deployment(deployment_id)",
    "create_flow_run_from_deployment(deployment_id, request=None)",
    "cancel_flow_run(flow_run_id, *, descendants=False)",
    "claim_flow_run(flow_run_id, *, process_id, worker_name=None)",
    "report_process_exit(flow_run_id, exit_code, *, worker_name=None)",
    "wait_for_flow_run(flow_run_id, timeout)",
    "create_work_pool(name, *, type='process', concurrency_limit=None, description=None)",
    "read_work_pool(name)",
    "read_work_pools()",
    "update_work_pool(name, *, concurrency_limit=UNSET, paused=None)",
    "delete_work_pool(name)",
    "create_work_queue(name, *, work_pool_name, priority=None, concurrency_limit=None, "
    "description=None)",
    "read_work_queue(name, *, work_pool_name)",
    "read_work_queues(*, work_pool_name=None)",
    "update_work_queue(name, *, work_pool_name, concurrency_limit=UNSET, priority=None, "
    "paused=None)",
    "delete_work_queue(name, *, work_pool_name)",
    "read_workers(work_pool_name)",
    "poll_work(work_pool_name, poll)",
    "backfill_deployment(deployment_id, *, start, end)",
    "schedule_runs()",
]


@pytest.mark.parametrize("module", list(EXPORTS))
def test_each_public_module_exports_what_the_snapshot_says(module: str) -> None:
    assert sorted(importlib.import_module(module).__all__) == sorted(EXPORTS[module])


def test_the_errors_are_what_the_snapshot_says() -> None:
    found = [
        name for name, value in vars(exceptions).items()
        if isinstance(value, type) and issubclass(value, BaseException)
        and value.__module__ == exceptions.__name__
    ]
    assert sorted(found) == sorted(ERRORS)


def test_the_client_methods_are_what_the_snapshot_says() -> None:
    found = []
    for op in OPERATIONS:
        parameters = [
            p.replace(annotation=inspect.Parameter.empty) for p in op.signature.parameters.values()
        ]
        bare = op.signature.replace(
            parameters=parameters, return_annotation=inspect.Signature.empty
        )
        found.append(f"{op.name}{bare}")
    assert sorted(found) == sorted(CLIENT_METHODS)
