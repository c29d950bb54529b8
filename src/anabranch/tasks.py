"""``@task``: a function whose every call or submit becomes a recorded task run."""

from __future__ import annotations

import datetime
import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar, overload

from anabranch._decorated import Decorated
from anabranch._engine.inputs import expand_map_calls
from anabranch._engine.lifecycle import RunOptions
from anabranch._engine.parameters import CallShape
from anabranch._engine.slots import check_limit
from anabranch._engine.task_engine import TaskRunEngine
from anabranch.futures import AnabranchFuture, AnabranchFutureList

P = ParamSpec("P")
R = TypeVar("R")

_UNSET: Any = object()


class Task(Decorated, Generic[P, R]):
    """A task: call it to run it here, ``.submit()`` it to run concurrently, ``.map()`` it to
    fan out over iterables."""

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        cache_key_fn: Callable[[Any, dict[str, Any]], str | None] | None = None,
        cache_expiration: datetime.timedelta | None = None,
        task_run_name: str | Callable[[], str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: float | list[float] | None = None,
        retry_jitter_factor: float | None = None,
        persist_result: bool | None = None,
        result_storage: str | Path | None = None,
        result_serializer: str | None = None,
        timeout_seconds: float | None = None,
        log_prints: bool | None = None,
        refresh_cache: bool | None = None,
        on_completion: list[Callable[..., Any]] | None = None,
        on_failure: list[Callable[..., Any]] | None = None,
        retry_condition_fn: Callable[..., bool] | None = None,
        concurrency_limit: int | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@task needs a function, got {fn!r}.")
        self.fn = fn
        self.name = name or fn.__name__
        self.description = description if description is not None else inspect.getdoc(fn)
        self.tags = frozenset(tags or ())
        self.version = version
        self.cache_key_fn = cache_key_fn
        self.cache_expiration = cache_expiration
        self.task_run_name = task_run_name
        self.retries = retries or 0
        self.retry_delay_seconds = retry_delay_seconds or 0
        self.retry_jitter_factor = retry_jitter_factor
        self.persist_result = persist_result
        self.result_storage = str(result_storage) if result_storage is not None else None
        self.result_serializer = result_serializer or "cloudpickle"
        self.timeout_seconds = timeout_seconds
        self.log_prints = log_prints
        self.refresh_cache = bool(refresh_cache)
        self.on_completion = list(on_completion or ())
        self.on_failure = list(on_failure or ())
        self.retry_condition_fn = retry_condition_fn
        self.concurrency_limit = check_limit(concurrency_limit, f"Task {self.name!r}")
        self.shape = CallShape(fn, f"Task {self.name!r}")
        self.is_async = inspect.iscoroutinefunction(fn)
        self.task_key = f"{fn.__module__}.{fn.__qualname__}"
        self.run_options = RunOptions(
            retries=self.retries,
            retry_delay_seconds=self.retry_delay_seconds,
            retry_jitter_factor=retry_jitter_factor,
            retry_condition_fn=retry_condition_fn,
            timeout_seconds=timeout_seconds,
            persist_result=bool(persist_result),
            result_storage=self.result_storage,
            result_serializer=self.result_serializer,
            on_completion=self.on_completion,
            on_failure=self.on_failure,
        )
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", self.name)
        self.__wrapped__ = fn

    _OPTIONS = (
        "name", "description", "tags", "version", "cache_key_fn", "cache_expiration",
        "task_run_name", "retries", "retry_delay_seconds", "retry_jitter_factor",
        "persist_result", "result_storage", "result_serializer", "timeout_seconds",
        "log_prints", "refresh_cache", "on_completion", "on_failure", "retry_condition_fn",
        "concurrency_limit",
    )

    def _engine(self, args: tuple, kwargs: dict, wait_for: Any) -> TaskRunEngine:
        parameters = self.shape.bind(args, kwargs)
        return TaskRunEngine.create(self, parameters, wait_for)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the task here and return its result (or its final state with
        ``return_state=True``; ``wait_for=[...]`` orders it after other runs)."""
        return_state = bool(kwargs.pop("return_state", False))
        wait_for = kwargs.pop("wait_for", None)
        engine = self._engine(args, kwargs, wait_for)
        if self.is_async:
            return _finish_async(engine, return_state)  # type: ignore[return-value]
        state = engine.run_here()
        return state if return_state else state.result()  # type: ignore[return-value]

    def submit(self, *args: Any, **kwargs: Any) -> AnabranchFuture[R]:
        """Start the task on the flow's task runner and return a future at once.

        Outside a flow it runs on a shared bounded thread pool and is recorded on its own.
        """
        wait_for = kwargs.pop("wait_for", None)
        return self._engine(args, kwargs, wait_for).submit()

    def map(self, *args: Any, **kwargs: Any) -> AnabranchFutureList:
        """Submit one run per element of the iterable arguments (zipped); ``unmapped(x)`` or a
        non-iterable argument is passed whole to every run."""
        wait_for = kwargs.pop("wait_for", None)
        return AnabranchFutureList(
            self._engine(a, k, wait_for).submit() for a, k in expand_map_calls(self, args, kwargs)
        )


async def _finish_async(engine: TaskRunEngine, return_state: bool) -> Any:
    state = await engine.run_here_async()
    return state if return_state else state.result()


@overload
def task(__fn: Callable[P, R]) -> Task[P, R]: ...


@overload
def task(**options: Any) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(__fn: Any = None, **options: Any) -> Any:
    """Turn a function into a Task; use bare (``@task``) or with options (``@task(retries=2)``)."""
    if __fn is not None:
        return Task(__fn, **options)
    return lambda fn: Task(fn, **options)
