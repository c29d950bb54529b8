"""Resolving futures passed as arguments, and the annotations that change how (unmapped,
allow_failure)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from anabranch.exceptions import FailedRun, UpstreamTaskError
from anabranch.futures import AnabranchFuture
from anabranch.schemas import State

T = TypeVar("T")


class unmapped(Generic[T]):  # noqa: N801 - the name users know
    """Pass this argument whole to every mapped run instead of iterating over it."""

    def __init__(self, value: T) -> None:
        self.value = value


class allow_failure(Generic[T]):  # noqa: N801 - the name users know
    """Let a run start even if this upstream future failed; it receives the exception."""

    def __init__(self, value: T) -> None:
        self.value = value


def _check(future: AnabranchFuture[Any]) -> None:
    future.wait()
    state = future.state
    if not state.is_completed():
        raise UpstreamTaskError(
            f"Upstream run {future.run.name!r} ended {state.name}"
            + (f": {state.message}" if state.message else "")
        )


def resolve_inputs(value: Any) -> Any:
    """Replace futures (also inside lists, tuples, sets and dicts) by their results, waiting
    for them; raise UpstreamTaskError for one that did not complete."""
    if isinstance(value, AnabranchFuture):
        _check(value)
        return value.state.result()
    if isinstance(value, allow_failure):
        inner = value.value
        if isinstance(inner, AnabranchFuture):
            inner.wait()
            return inner.state.result(raise_on_failure=False)
        return resolve_inputs(inner)
    if isinstance(value, unmapped):
        return resolve_inputs(value.value)
    if isinstance(value, (list, tuple, set, frozenset)):
        if not any(isinstance(v, (_RESOLVABLE, _CONTAINERS)) for v in value):
            return value
        resolved = [resolve_inputs(v) for v in value]
        return resolved if isinstance(value, list) else type(value)(resolved)
    if isinstance(value, dict):
        return {k: resolve_inputs(v) for k, v in value.items()}
    return value


def wait_for_all(futures: Iterable[Any]) -> None:
    """``wait_for=[...]``: order without data; a failed upstream stops this run too."""
    for future in futures:
        if isinstance(future, allow_failure):
            future.value.wait()
        elif isinstance(future, AnabranchFuture):
            _check(future)


def resolve_returned(value: Any) -> Any:
    """What a flow returns decides how it ends: futures and states are replaced by their
    results, and a returned failed state (or a collection with one) fails the flow."""
    if isinstance(value, AnabranchFuture):
        return value.result()
    if isinstance(value, State):
        return value.result()
    if isinstance(value, (list, tuple)) and any(isinstance(v, _OUTCOMES) for v in value):
        for item in value:
            if isinstance(item, AnabranchFuture):
                item.wait()
        states = [v.state if isinstance(v, AnabranchFuture) else v for v in value]
        failed = [s for s in states if isinstance(s, State) and not s.is_completed()]
        if failed:
            raise FailedRun(
                f"{len(failed)} of {len(value)} returned runs did not complete; the first "
                f"ended {failed[0].name}: {failed[0].message}"
            ) from failed[0].result(raise_on_failure=False)
        resolved = [resolve_returned(v) for v in value]
        return resolved if isinstance(value, list) else type(value)(resolved)
    return value


def _is_mapped(value: Any) -> bool:
    if isinstance(value, (unmapped, str, bytes, dict)):
        return False
    return isinstance(value, Iterable)


def expand_map_calls(owner: Any, args: tuple, kwargs: dict) -> list[tuple[tuple, dict]]:
    """The (args, kwargs) of each mapped call; iterables must all have the same length."""
    mapped = [list(v) if _is_mapped(v) else None for v in args]
    mapped_kw = {k: list(v) for k, v in kwargs.items() if _is_mapped(v)}
    lengths = {len(v) for v in mapped if v is not None} | {len(v) for v in mapped_kw.values()}
    if not lengths:
        raise TypeError(f"map() of {owner.name!r} needs at least one iterable argument.")
    if len(lengths) > 1:
        raise ValueError(
            f"map() of {owner.name!r} got iterables of different lengths {sorted(lengths)}; "
            "pass equal lengths, or wrap arguments meant for every run in unmapped()."
        )
    calls = []
    for i in range(lengths.pop()):
        call_args = tuple(
            v[i] if v is not None else _whole(a) for v, a in zip(mapped, args, strict=True)
        )
        call_kwargs = {k: mapped_kw[k][i] if k in mapped_kw else _whole(v)
                       for k, v in kwargs.items()}
        calls.append((call_args, call_kwargs))
    return calls


def _whole(value: Any) -> Any:
    return value.value if isinstance(value, unmapped) else value


_RESOLVABLE = (AnabranchFuture, allow_failure, unmapped)
_OUTCOMES = (AnabranchFuture, State)
_CONTAINERS = (list, tuple, set, frozenset, dict)
