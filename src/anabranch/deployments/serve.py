"""serve(): one long-running process that stores its deployments and runs their runs itself,
each in a subprocess, with no work pool or separate worker to set up."""

from __future__ import annotations

import logging
import os
import shlex

from anabranch.client import get_client
from anabranch.schemas.deployments import Deployment
from anabranch.workers.worker import ProcessWorker

logger = logging.getLogger("anabranch.serve")


def serve(*deployments: Deployment, limit: int | None = None) -> None:
    """Save ``deployments`` (made with ``flow.to_deployment(...)``) as served deployments and
    run their runs (from schedules, ``run_deployment`` or `anabranch deployment run`) until
    Ctrl-C or SIGTERM; ``limit`` caps how many run at once in this process."""
    if not deployments:
        raise ValueError("serve() needs at least one deployment: flow.to_deployment(name=...).")
    client = get_client()
    served = {"work_pool_name": None, "work_queue_name": None}
    saved = [client.save_deployment(d.model_copy(update=served)) for d in deployments]
    for deployment in saved:
        print(
            f"Serving {deployment.full_name!r}; run it with: anabranch deployment run "
            f"{shlex.quote(deployment.full_name)}"
        )
    worker = ProcessWorker(
        None, deployment_ids=[d.id for d in saved], limit=limit, name=f"serve-{os.getpid()}"
    )
    worker.run()
