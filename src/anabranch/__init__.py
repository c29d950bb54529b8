"""anabranch: flows fan out into tasks and subflows under limits you control, and rejoin.

Importing this package does no I/O, starts no thread and reads no setting.
"""

from anabranch._engine.inputs import allow_failure, unmapped
from anabranch.client import get_client
from anabranch.context import get_run_context, tags
from anabranch.deployments.deploy import save_deployments as deploy
from anabranch.deployments.serve import serve
from anabranch.flows import Flow, flow
from anabranch.futures import AnabranchFuture
from anabranch.logging import get_run_logger
from anabranch.schemas import FlowRun, State, TaskRun
from anabranch.tasks import Task, task

__version__ = "0.1.0"

__all__ = [
    # authoring
    "Flow",
    "Task",
    "flow",
    "task",
    "tags",
    "unmapped",
    "allow_failure",
    # deploying
    "deploy",
    "serve",
    # runtime
    "AnabranchFuture",
    "get_run_context",
    "get_run_logger",
    # the store
    "get_client",
    # records
    "FlowRun",
    "State",
    "TaskRun",
]
