"""How an operation of the store is declared, once, for every transport.

An operation is a method stub on a surface class: its signature (names, types, defaults)
is what callers type, its docstring what they read, and the ``@operation`` decorator adds
what the transports need: the HTTP method and path, the orchestration function that carries
it out, whether it writes, what it wakes, which errors it may raise, and whether a request
whose answer was lost may be sent again. The decorator replaces the stub's body with a
dispatch: ``self._call(operation, arguments)``, which each client implements once (in
process, over HTTP, or awaited), and the server registers a route per declaration.
"""

from __future__ import annotations

import functools
import inspect
import typing
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic
from pydantic import TypeAdapter

from anabranch.exceptions import AnabranchError

F = TypeVar("F", bound=Callable[..., Any])

# What a write tells long waits in this process (a worker's poll, a run_deployment wait):
# the flow runs that may have ended, and whether work for a worker may have changed.
Wake = Callable[[dict[str, Any], Any], tuple[Iterable[uuid.UUID], bool]]


def wakes_workers(arguments: dict[str, Any], result: Any) -> tuple[Iterable[uuid.UUID], bool]:
    """Something a worker may act on changed (a run made, a limit freed or raised)."""
    return (), True


def ends_the_run(arguments: dict[str, Any], result: Any) -> tuple[Iterable[uuid.UUID], bool]:
    """The flow run named by the ``flow_run_id`` argument may have ended."""
    return (arguments["flow_run_id"],), True


def ends_the_runs_returned(
    arguments: dict[str, Any], result: Any
) -> tuple[Iterable[uuid.UUID], bool]:
    """The flow runs whose ids the operation returned may have ended."""
    return result, True


@dataclass(frozen=True, eq=False)
class Operation:
    """One operation of the store, as declared."""

    name: str
    method: str
    path: str
    # "module:function" in anabranch.orchestration, called with a connection first; None
    # when the embedded client carries it out itself (a wait that spans transactions).
    implementation: str | None
    stub: Callable[..., Any]
    signature: inspect.Signature
    doc: str
    writes: bool
    errors: tuple[type[AnabranchError], ...]
    wakes: Wake | None = None
    # A parameter that is the whole request body (a model or a list of them); otherwise the
    # parameters that are not in the path travel as one JSON object (or as query strings).
    body: str | None = None
    # Whether a request whose answer was lost may be sent again (it changes nothing twice),
    # or a function of the call's arguments that says so.
    resend: bool | Callable[[dict[str, Any]], bool] = True
    # Seconds the server may hold the request (a long poll): read from this parameter.
    holds_for: str | None = None
    # How long the HTTP client waits for an answer that takes long to compute.
    answer_seconds: float | None = None

    @functools.cached_property
    def path_parameters(self) -> tuple[str, ...]:
        names = []
        for part in self.path.split("{")[1:]:
            names.append(part.split("}")[0].split(":")[0])
        return tuple(names)

    @functools.cached_property
    def uses_query(self) -> bool:
        return self.method in ("GET", "DELETE")

    @functools.cached_property
    def other_parameters(self) -> tuple[str, ...]:
        """The parameters not in the path: query strings (GET, DELETE) or the body."""
        return tuple(n for n in self.signature.parameters if n not in self.path_parameters)

    @functools.cached_property
    def _type_hints(self) -> dict[str, Any]:
        # Resolved on first use: the surfaces use ``from __future__ import annotations``.
        return typing.get_type_hints(self.stub, include_extras=True)

    @functools.cached_property
    def hints(self) -> dict[str, Any]:
        """The parameters' types."""
        return {name: hint for name, hint in self._type_hints.items() if name != "return"}

    @functools.cached_property
    def returns(self) -> Any:
        """The result's type; None for an operation that returns nothing."""
        returns = self._type_hints.get("return")
        return None if returns is type(None) else returns

    @functools.cached_property
    def body_model(self) -> type[pydantic.BaseModel] | None:
        """The JSON object a request's body holds, when the parameters travel in one."""
        if self.uses_query or self.body is not None or not self.other_parameters:
            return None
        fields: dict[str, Any] = {}
        for name in self.other_parameters:
            parameter = self.signature.parameters[name]
            default = ... if parameter.default is inspect.Parameter.empty else parameter.default
            fields[name] = (self.hints[name], default)
        title = "".join(part.title() for part in self.name.split("_")) + "Body"
        return pydantic.create_model(title, __config__=_BODY_CONFIG, **fields)

    @functools.cached_property
    def body_adapter(self) -> TypeAdapter[Any] | None:
        """The whole-body parameter's type, validated straight from the request's bytes."""
        return None if self.body is None else TypeAdapter(self.hints[self.body])

    @functools.cached_property
    def result_adapter(self) -> TypeAdapter[Any] | None:
        return None if self.returns is None else TypeAdapter(self.returns)

    def may_resend(self, arguments: dict[str, Any]) -> bool:
        return self.resend(arguments) if callable(self.resend) else self.resend

    def held_seconds(self, arguments: dict[str, Any]) -> float:
        """How long the server may hold this request before it answers (a long poll)."""
        if self.holds_for is None:
            return 0.0
        name, _, attribute = self.holds_for.partition(".")
        value = arguments[name]
        return float(getattr(value, attribute) if attribute else value)

    def bind(self, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by name, defaults included; TypeError as a call would."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)


_BODY_CONFIG = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True)


def operation(
    method: str,
    path: str,
    *,
    implementation: str | None,
    errors: Sequence[type[AnabranchError]] = (),
    writes: bool | None = None,
    wakes: Wake | None = None,
    body: str | None = None,
    resend: bool | Callable[[dict[str, Any]], bool] = True,
    holds_for: str | None = None,
    answer_seconds: float | None = None,
) -> Callable[[F], F]:
    """Declare the decorated stub as an operation of the store (see the module docstring).

    ``writes`` defaults to every method but GET; ``errors`` are the anabranch errors the
    operation raises on purpose, which cross the wire by name."""

    def declare(stub: F) -> F:
        signature = inspect.signature(stub)
        parameters = list(signature.parameters.values())[1:]  # without self
        declared = Operation(
            name=stub.__name__,
            method=method,
            path=path,
            implementation=implementation,
            stub=stub,
            signature=signature.replace(parameters=parameters),
            doc=inspect.getdoc(stub) or "",
            writes=method != "GET" if writes is None else writes,
            errors=tuple(errors),
            wakes=wakes,
            body=body,
            resend=resend,
            holds_for=holds_for,
            answer_seconds=answer_seconds,
        )
        @functools.wraps(stub)
        def dispatch(self: Any, *args: Any, **kwargs: Any) -> Any:
            return self._call(declared, declared.bind(args, kwargs))

        dispatch.operation = declared  # type: ignore[attr-defined]
        return dispatch  # type: ignore[return-value]

    return declare


def operations_of(surface: type) -> list[Operation]:
    """Every operation declared on ``surface`` and its bases, in declaration order."""
    found: dict[str, Operation] = {}
    for cls in surface.__mro__:
        for value in vars(cls).values():
            declared = getattr(value, "operation", None)
            if isinstance(declared, Operation):
                found.setdefault(declared.name, declared)
    return list(found.values())
