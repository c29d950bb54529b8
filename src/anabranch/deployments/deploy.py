"""Deploying a flow: storing it with everything a worker needs to run it elsewhere.

Everything that can be wrong with a deployment is checked here, when the user deploys, not
when the first run fails on a worker: the name, the default parameters (against the flow's
signature), the schedules and the job variables. ``Flow.deploy`` and `anabranch deploy`
only delegate to this module.
"""

from __future__ import annotations

import math
import shlex
import shutil
import uuid
import zoneinfo
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pydantic

from anabranch._decorated import Decorated
from anabranch.client import AnabranchClient, get_client
from anabranch.deployments.describe import FlowFacts, describe, describe_with
from anabranch.deployments.entrypoints import (
    entrypoint_for,
    is_file_target,
    is_flow,
    load_flow,
    split_entrypoint,
)
from anabranch.exceptions import InvalidDeployment
from anabranch.schemas.concurrency import MAX_STORED_INT
from anabranch.schemas.deployments import Deployment, LateRunPolicy, Schedule

# What a process work pool's job variables may set, and what each means to the worker.
JOB_VARIABLES = {
    "env": "environment variables of the run's process (a mapping of names to values)",
    "python": "the Python interpreter that runs the flow, e.g. another virtualenv's python",
    "working_dir": "the directory the run's process starts in; relative entrypoints are "
    "taken from it",
}


def build_deployment(
    flow: Decorated,
    *,
    name: str,
    parameters: Mapping[str, Any] | None = None,
    job_variables: Mapping[str, Any] | None = None,
    entrypoint: str | None = None,
    enforce_parameter_schema: bool = True,
    **options: Any,
) -> Deployment:
    """The Deployment of ``flow`` named ``name``, checked but not saved (the other options
    are ``assemble``'s).

    ``entrypoint`` defaults to where ``flow`` was defined. A relative file entrypoint is
    taken from the current directory now and stored relative to the ``working_dir`` job
    variable, which defaults to the current directory, so a worker finds the file whatever
    directory it was started in.
    """
    if not is_flow(flow):
        raise TypeError(f"deploy() needs a flow (a @flow function), got {flow!r}.")
    variables = _job_variables(job_variables or {})
    located, variables = _locate(entrypoint or entrypoint_for(flow), variables)
    facts = describe(flow, dict(parameters or {}), enforce_parameter_schema)
    return assemble(facts, name=name, entrypoint=located, job_variables=variables, **options)


def build_deployment_from_entrypoint(
    entrypoint: str,
    *,
    name: str,
    parameters: Mapping[str, Any] | None = None,
    job_variables: Mapping[str, Any] | None = None,
    enforce_parameter_schema: bool = True,
    **options: Any,
) -> Deployment:
    """The Deployment of the flow at ``entrypoint``, checked but not saved. When the job
    variables name a ``python`` interpreter found on this machine, that interpreter imports
    and describes the flow, so its packages need to exist only in the environment it runs
    in; one not found here (it may exist only on the workers' hosts) leaves it to this one."""
    variables = _job_variables(job_variables or {})
    located, variables = _locate(entrypoint, variables)
    python = variables.get("python")
    if python is None or shutil.which(python) is None:
        facts = describe(load_flow(entrypoint), dict(parameters or {}), enforce_parameter_schema)
    else:
        facts = describe_with(
            python,
            located,
            working_dir=variables.get("working_dir"),
            env=variables.get("env", {}),
            parameters=dict(parameters or {}),
            enforce_parameter_schema=enforce_parameter_schema,
        )
    return assemble(facts, name=name, entrypoint=located, job_variables=variables, **options)


def assemble(
    facts: FlowFacts,
    *,
    name: str,
    entrypoint: str,
    job_variables: dict[str, Any],
    work_pool_name: str | None = None,
    work_queue_name: str | None = None,
    tags: Iterable[str] | None = None,
    description: str | None = None,
    version: str | None = None,
    concurrency_limit: int | None = None,
    cron: str | Iterable[str] | None = None,
    interval: float | timedelta | Iterable[float | timedelta] | None = None,
    timezone: str | None = None,
    schedules: Iterable[Schedule | Mapping[str, Any]] | None = None,
    late_run_policy: LateRunPolicy | str | None = None,
    max_lateness_seconds: float | None = None,
    paused: bool = False,
) -> Deployment:
    """The Deployment of a described flow, with every setting checked."""
    _check_name(name, "deployment")
    _check_name(facts.name, "flow")
    return Deployment(
        name=name,
        flow_name=facts.name,
        entrypoint=entrypoint,
        description=description if description is not None else facts.description,
        version=version if version is not None else facts.version,
        tags=list(dict.fromkeys(tags or ())),
        parameters=facts.parameters,
        parameter_schema=facts.parameter_schema,
        work_pool_name=work_pool_name,
        work_queue_name=work_queue_name,
        job_variables=job_variables,
        concurrency_limit=_concurrency_limit(concurrency_limit),
        schedules=_schedules(cron, interval, timezone, schedules),
        late_run_policy=_late_run_policy(late_run_policy),
        max_lateness_seconds=_max_lateness(max_lateness_seconds),
        paused=bool(paused),
    )


def deploy(flow: Decorated, *, name: str, **options: Any) -> Deployment:
    """Build the deployment (see ``build_deployment`` and ``assemble`` for the options)
    and save it: a deployment of the same flow and name is replaced, keeping its id and
    its runs."""
    return get_client().save_deployment(build_deployment(flow, name=name, **options))


def save_deployments(
    *deployments: Deployment, work_pool_name: str | None = None
) -> list[uuid.UUID]:
    """Save deployments made with ``flow.to_deployment(...)``, giving ``work_pool_name`` to
    those without a pool; their ids, in order. ``anabranch.deploy`` is this function."""
    client = get_client()
    saved = []
    for deployment in deployments:
        if work_pool_name is not None and deployment.work_pool_name is None:
            deployment = deployment.model_copy(update={"work_pool_name": work_pool_name})
        saved.append(client.save_deployment(deployment).id)
    return saved


def next_steps(deployment: Deployment, client: AnabranchClient | None = None) -> list[str]:
    """What to type to run a deployment, and to start a worker when its pool has none."""
    client = client or get_client()
    steps = [f"Run it: anabranch deployment run {shlex.quote(deployment.full_name)}"]
    pool = deployment.work_pool_name
    if pool is None:
        steps.append(
            "It has no work pool, so only a process serving it (flow.serve) runs it; deploy "
            "it with a work pool to run it on workers."
        )
    elif client.read_work_pool(pool).online_workers == 0:
        steps.append(
            f"No worker of work pool {pool!r} is online; start one: "
            f"anabranch worker start --pool {shlex.quote(pool)}"
        )
    return steps


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise InvalidDeployment(
            f"{name!r} can not be a {what} name: a deployment is addressed as "
            "'flow-name/deployment-name', so names are non-empty and have no '/'."
        )


def _locate(entrypoint: str, variables: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The entrypoint as stored, and the job variables with the working directory it is
    relative to."""
    target, attribute = split_entrypoint(entrypoint)
    if not is_file_target(target):
        return entrypoint, variables
    path = Path(target).resolve()
    base = Path(variables.get("working_dir") or Path.cwd()).resolve()
    if not path.is_relative_to(base):
        return f"{path}:{attribute}", variables
    relative = f"{path.relative_to(base).as_posix()}:{attribute}"
    return relative, {**variables, "working_dir": str(base)}


def _job_variables(given: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(JOB_VARIABLES))
    if unknown:
        raise InvalidDeployment(
            f"Unknown job variable {', '.join(map(repr, unknown))}; a process work pool "
            f"takes: {', '.join(JOB_VARIABLES)}."
        )
    variables: dict[str, Any] = {}
    if given.get("env") is not None:
        env = given["env"]
        if not isinstance(env, Mapping):
            raise InvalidDeployment(
                f"Job variable 'env' must map environment variable names to values, not {env!r}."
            )
        variables["env"] = {str(key): str(value) for key, value in env.items()}
    for key in ("python", "working_dir"):
        value = given.get(key)
        if value is None:
            continue
        if not isinstance(value, (str, Path)) or not str(value):
            raise InvalidDeployment(f"Job variable {key!r} must be a path, not {value!r}.")
        variables[key] = str(Path(value).resolve()) if key == "working_dir" else str(value)
    return variables


def _schedules(
    cron: str | Iterable[str] | None,
    interval: float | timedelta | Iterable[float | timedelta] | None,
    timezone: str | None,
    schedules: Iterable[Schedule | Mapping[str, Any]] | None,
) -> list[Schedule]:
    given = [what for what, value in (("cron", cron), ("interval", interval),
                                     ("schedules", schedules)) if value is not None]
    if len(given) > 1:
        raise InvalidDeployment(
            f"Give one of cron, interval or schedules, not {' and '.join(given)}."
        )
    if timezone is not None:
        if cron is None and interval is None:
            raise InvalidDeployment("A timezone applies to a cron or interval schedule; give one.")
        _check_timezone(timezone)
    zone = timezone or "UTC"
    if cron is not None:
        crons = [cron] if isinstance(cron, str) else list(cron)
        return [Schedule(cron=expression, timezone=zone) for expression in crons]
    if interval is not None:
        intervals = list(interval) if isinstance(interval, Iterable) else [interval]
        return [Schedule(interval=_seconds(every), timezone=zone) for every in intervals]
    result = []
    for schedule in schedules or ():
        try:
            result.append(Schedule.model_validate(schedule))
        except pydantic.ValidationError as exc:
            problems = "; ".join(error["msg"] for error in exc.errors())
            raise InvalidDeployment(f"Invalid schedule {schedule!r}: {problems}.") from None
        _check_timezone(result[-1].timezone)
    return result


def _seconds(every: float | timedelta) -> float:
    seconds = every.total_seconds() if isinstance(every, timedelta) else every
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise InvalidDeployment(f"An interval is a number of seconds above 0, not {every!r}.")
    if not math.isfinite(seconds):
        raise InvalidDeployment(
            f"An interval is a finite number of seconds, not {every!r}; for a deployment "
            "that runs only when asked, give no schedule."
        )
    return float(seconds)


def _check_timezone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidDeployment(
            f"Unknown timezone {name!r}; use an IANA name such as 'UTC' or 'Europe/Paris'."
        ) from None


def _late_run_policy(policy: LateRunPolicy | str | None) -> LateRunPolicy:
    if policy is None:
        return LateRunPolicy.RUN
    try:
        return LateRunPolicy(policy)
    except ValueError:
        choices = ", ".join(p.value for p in LateRunPolicy)
        raise InvalidDeployment(
            f"Unknown late-run policy {policy!r}; choose one of {choices}."
        ) from None


def _max_lateness(seconds: float | None) -> float | None:
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise InvalidDeployment(
            f"max_lateness_seconds is a number of seconds, 0 or more, not {seconds!r}."
        )
    if not math.isfinite(seconds):
        raise InvalidDeployment(
            f"max_lateness_seconds is a finite number of seconds, not {seconds!r}; for runs "
            "that are never too late, use late_run_policy='run'."
        )
    return float(seconds)


def _concurrency_limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidDeployment(
            f"A deployment's concurrency_limit is a whole number, 0 or more, not {limit!r}."
        )
    if limit > MAX_STORED_INT:
        raise InvalidDeployment(
            f"A deployment's concurrency_limit must be at most {MAX_STORED_INT:,} (the largest "
            f"whole number the databases store), not {limit:,}; leave it None for no limit."
        )
    return limit
