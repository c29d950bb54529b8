"""``@flow``: a function whose every call becomes a recorded flow run; called inside another
flow (or a task) it is a subflow linked to its parent."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar, overload

from anabranch._decorated import Decorated
from anabranch._engine.flow_engine import FlowRunEngine
from anabranch._engine.inputs import expand_map_calls
from anabranch._engine.lifecycle import RunOptions
from anabranch._engine.parameters import CallShape, ParameterValidator
from anabranch._engine.slots import check_limit
from anabranch.deployments.deploy import build_deployment, next_steps
from anabranch.deployments.deploy import deploy as deploy_flow
from anabranch.deployments.serve import serve
from anabranch.futures import AnabranchFuture, AnabranchFutureList
from anabranch.schemas.deployments import Deployment, LateRunPolicy, Schedule
from anabranch.task_runners import TaskRunner, ThreadPoolTaskRunner

P = ParamSpec("P")
R = TypeVar("R")


class Flow(Decorated, Generic[P, R]):
    """A flow: call it to run it (as a subflow inside another run), ``.submit()`` or
    ``.map()`` it inside a flow to run subflows concurrently on the parent's task runner."""

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        version: str | None = None,
        flow_run_name: str | Callable[[], str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: float | list[float] | None = None,
        task_runner: TaskRunner | type[TaskRunner] | None = None,
        description: str | None = None,
        timeout_seconds: float | None = None,
        validate_parameters: bool = True,
        persist_result: bool | None = None,
        result_storage: str | Path | None = None,
        result_serializer: str | None = None,
        log_prints: bool | None = None,
        tags: Iterable[str] | None = None,
        on_completion: list[Callable[..., Any]] | None = None,
        on_failure: list[Callable[..., Any]] | None = None,
        concurrency_limit: int | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@flow needs a function, got {fn!r}.")
        self.fn = fn
        self.name = name or fn.__name__.replace("_", "-")
        self.version = version
        self.flow_run_name = flow_run_name
        self.retries = retries or 0
        self.retry_delay_seconds = retry_delay_seconds or 0
        if isinstance(task_runner, type):
            task_runner = task_runner()
        self.task_runner: TaskRunner = task_runner or ThreadPoolTaskRunner()
        self.description = description if description is not None else inspect.getdoc(fn)
        self.timeout_seconds = timeout_seconds
        self.validate_parameters = validate_parameters
        self.persist_result = persist_result
        self.result_storage = str(result_storage) if result_storage is not None else None
        self.result_serializer = result_serializer or "cloudpickle"
        self.log_prints = log_prints
        self.tags = frozenset(tags or ())
        self.on_completion = list(on_completion or ())
        self.on_failure = list(on_failure or ())
        self.concurrency_limit = check_limit(concurrency_limit, f"Flow {self.name!r}")
        self.shape = CallShape(fn, f"Flow {self.name!r}")
        self.is_async = inspect.iscoroutinefunction(fn)
        self._validator: ParameterValidator | None = None
        self.run_options = RunOptions(
            retries=self.retries,
            retry_delay_seconds=self.retry_delay_seconds,
            timeout_seconds=timeout_seconds,
            persist_result=persist_result,
            result_storage=self.result_storage,
            result_serializer=self.result_serializer,
            on_completion=self.on_completion,
            on_failure=self.on_failure,
        )
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", self.name)
        self.__wrapped__ = fn

    _OPTIONS = (
        "name", "version", "flow_run_name", "retries", "retry_delay_seconds", "task_runner",
        "description", "timeout_seconds", "validate_parameters", "persist_result",
        "result_storage", "result_serializer", "log_prints", "tags", "on_completion",
        "on_failure", "concurrency_limit",
    )

    def validate(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Coerce parameters to the annotated types (ParameterTypeError names a bad one)."""
        if not self.validate_parameters:
            return parameters
        if self._validator is None:
            self._validator = ParameterValidator(self.fn, f"Flow {self.name!r}")
        return self._validator.validate(parameters)

    def _engine(self, args: tuple, kwargs: dict) -> FlowRunEngine:
        parameters = self.shape.bind(args, kwargs)
        return FlowRunEngine(self, self.validate(parameters))

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the flow and return its result (its final state with ``return_state=True``).

        An async flow returns a coroutine to await.
        """
        return_state = bool(kwargs.pop("return_state", False))
        if self.is_async:
            return self._call_async(args, kwargs, return_state)  # type: ignore[return-value]
        state = self._engine(args, kwargs).run_sync()
        return state if return_state else state.result()  # type: ignore[return-value]

    async def _call_async(self, args: tuple, kwargs: dict, return_state: bool) -> Any:
        state = await self._engine(args, kwargs).run_async()
        return state if return_state else state.result()

    def submit(self, *args: Any, **kwargs: Any) -> AnabranchFuture[R]:
        """Run this flow as a subflow on the calling flow's task runner; returns a future."""
        return self._engine(args, kwargs).submit()

    def map(self, *args: Any, **kwargs: Any) -> AnabranchFutureList:
        """Submit one subflow run per element of the iterable arguments."""
        return AnabranchFutureList(
            self._engine(a, k).submit() for a, k in expand_map_calls(self, args, kwargs)
        )

    def deploy(
        self,
        name: str,
        work_pool_name: str | None = None,
        *,
        work_queue_name: str | None = None,
        job_variables: Mapping[str, Any] | None = None,
        interval: float | timedelta | Iterable[float | timedelta] | None = None,
        cron: str | Iterable[str] | None = None,
        timezone: str | None = None,
        paused: bool | None = None,
        schedules: Iterable[Schedule | Mapping[str, Any]] | None = None,
        concurrency_limit: int | None = None,
        parameters: Mapping[str, Any] | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        enforce_parameter_schema: bool = True,
        late_run_policy: LateRunPolicy | str | None = None,
        max_lateness_seconds: float | None = None,
        entrypoint: str | None = None,
        print_next_steps: bool = True,
    ) -> uuid.UUID:
        """Store this flow as deployment ``name`` for workers of ``work_pool_name`` to run,
        replacing an existing one of the same name; returns the deployment's id.

        The flow is found again by its file and function name (``entrypoint`` overrides
        that), so it must be defined at the top level of a file. Default ``parameters`` are
        checked against the signature now. Beyond Prefect: ``timezone`` for ``cron`` or
        ``interval``, and ``late_run_policy`` (``run``, ``skip`` or ``latest``) with
        ``max_lateness_seconds`` for runs that could not start on time.
        """
        deployment = deploy_flow(
            self,
            name=name,
            work_pool_name=work_pool_name,
            work_queue_name=work_queue_name,
            job_variables=job_variables,
            interval=interval,
            cron=cron,
            timezone=timezone,
            paused=bool(paused),
            schedules=schedules,
            concurrency_limit=concurrency_limit,
            parameters=parameters,
            description=description,
            tags=tags,
            version=version,
            enforce_parameter_schema=enforce_parameter_schema,
            late_run_policy=late_run_policy,
            max_lateness_seconds=max_lateness_seconds,
            entrypoint=entrypoint,
        )
        if print_next_steps:
            print(f"Deployed {deployment.full_name!r} ({deployment.id}).")
            for step in next_steps(deployment):
                print(step)
        return deployment.id

    def serve(self, name: str | None = None, *, limit: int | None = None, **options: Any) -> None:
        """Store this flow as deployment ``name`` (default: the flow's name) and run its runs
        in this long-running process until Ctrl-C; ``options`` are to_deployment's
        (schedules, parameters, tags...), ``limit`` caps its simultaneous runs."""
        serve(self.to_deployment(name or self.name, **options), limit=limit)

    def to_deployment(
        self,
        name: str,
        *,
        work_pool_name: str | None = None,
        work_queue_name: str | None = None,
        job_variables: Mapping[str, Any] | None = None,
        interval: float | timedelta | Iterable[float | timedelta] | None = None,
        cron: str | Iterable[str] | None = None,
        timezone: str | None = None,
        paused: bool | None = None,
        schedules: Iterable[Schedule | Mapping[str, Any]] | None = None,
        concurrency_limit: int | None = None,
        parameters: Mapping[str, Any] | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        enforce_parameter_schema: bool = True,
        late_run_policy: LateRunPolicy | str | None = None,
        max_lateness_seconds: float | None = None,
        entrypoint: str | None = None,
    ) -> Deployment:
        """The deployment ``deploy`` would save, checked but not saved: pass several to
        ``anabranch.deploy(...)`` to save them together."""
        return build_deployment(
            self,
            name=name,
            work_pool_name=work_pool_name,
            work_queue_name=work_queue_name,
            job_variables=job_variables,
            interval=interval,
            cron=cron,
            timezone=timezone,
            paused=bool(paused),
            schedules=schedules,
            concurrency_limit=concurrency_limit,
            parameters=parameters,
            description=description,
            tags=tags,
            version=version,
            enforce_parameter_schema=enforce_parameter_schema,
            late_run_policy=late_run_policy,
            max_lateness_seconds=max_lateness_seconds,
            entrypoint=entrypoint,
        )


@overload
def flow(__fn: Callable[P, R]) -> Flow[P, R]: ...


@overload
def flow(**options: Any) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(__fn: Any = None, **options: Any) -> Any:
    """Turn a function into a Flow; use bare (``@flow``) or with options."""
    if __fn is not None:
        return Flow(__fn, **options)
    return lambda fn: Flow(fn, **options)
