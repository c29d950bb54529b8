"""Binding call arguments to parameters, validating flow parameters, and run-name templates."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pydantic

from anabranch.exceptions import ParameterTypeError


class CallShape:
    """How one function's call arguments map to parameter names and back, worked out once.

    Binding and calling happen for every task run, so a function whose parameters are all
    plain (no ``*args``, ``**kwargs`` or positional-only ones) takes a fast path that skips
    ``inspect.Signature.bind``; anything unusual, including every error, takes the slow one.
    """

    def __init__(self, fn: Callable[..., Any], owner: str) -> None:
        self.signature = inspect.signature(fn)
        self.owner = owner
        params = list(self.signature.parameters.values())
        plain_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        self._plain = all(p.kind in plain_kinds for p in params)
        self._names = tuple(p.name for p in params)
        self._name_set = frozenset(self._names)
        self._positional = tuple(
            p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        self._defaults = {p.name: p.default for p in params if p.default is not p.empty}

    def bind(self, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The parameters of a call by name, defaults applied, in signature order."""
        if self._plain and len(args) <= len(self._positional):
            bound = dict(zip(self._positional, args, strict=False))
            if not (bound.keys() & kwargs.keys()) and kwargs.keys() <= self._name_set:
                bound.update(kwargs)
                if len(bound) < len(self._names):
                    bound = {**self._defaults, **bound}
                if len(bound) == len(self._names):
                    return {name: bound[name] for name in self._names}
        return self._bind_slowly(args, kwargs)

    def _bind_slowly(self, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ParameterTypeError(
                f"{self.owner} was called with arguments that do not fit its signature "
                f"{self.signature}: {exc}."
            ) from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def call(self, fn: Callable[..., Any], parameters: dict[str, Any]) -> Any:
        """Call ``fn`` with bound parameters, spreading ``*args`` and ``**kwargs`` back out."""
        if self._plain:
            return fn(**parameters)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for name, param in self.signature.parameters.items():
            if name not in parameters:
                continue
            value = parameters[name]
            if param.kind is param.VAR_POSITIONAL:
                args.extend(value)
            elif param.kind is param.VAR_KEYWORD:
                kwargs.update(value)
            elif param.kind is param.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[name] = value
        return fn(*args, **kwargs)


class ParameterValidator:
    """Validates and coerces flow parameters against the signature's annotations (pydantic).

    An ISO string for a ``date`` parameter becomes a ``date``; a value that cannot be coerced
    is a ParameterTypeError naming the parameter, raised before any run is recorded.
    """

    def __init__(self, fn: Callable[..., Any], owner: str) -> None:
        self._owner = owner
        fields: dict[str, Any] = {}
        self._variadic: set[str] = set()
        for name, param in inspect.signature(fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                self._variadic.add(name)
                continue
            annotation = _resolve_annotation(fn, param.annotation)
            default = ... if param.default is param.empty else param.default
            fields[name] = (annotation, default)
        self._model = pydantic.create_model(
            f"{fn.__name__}_parameters",
            __config__=pydantic.ConfigDict(arbitrary_types_allowed=True),
            **fields,
        )

    def validate(self, parameters: dict[str, Any]) -> dict[str, Any]:
        checked = {k: v for k, v in parameters.items() if k not in self._variadic}
        try:
            model = self._model.model_validate(checked)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"parameter {'.'.join(str(p) for p in err['loc'])!r}: {err['msg']} "
                f"(got {err.get('input')!r})"
                for err in exc.errors()
            )
            raise ParameterTypeError(
                f"{self._owner} received invalid parameters: {problems}. Pass values of the "
                "annotated types, or use validate_parameters=False to skip validation."
            ) from None
        validated = {name: getattr(model, name) for name in checked}
        return {**parameters, **validated}


def _resolve_annotation(fn: Callable[..., Any], annotation: Any) -> Any:
    """The annotation as a type; a string one (``from __future__ import annotations``) is
    evaluated in the function's module, and one that cannot be resolved validates nothing."""
    if annotation is inspect.Parameter.empty:
        return Any
    if isinstance(annotation, str):
        try:
            return eval(annotation, getattr(fn, "__globals__", {}))  # noqa: S307
        except Exception:
            return Any
    return annotation


def render_run_name(
    template: str | Callable[[], str], parameters: dict[str, Any], owner: str
) -> str:
    """A run name from a ``"{param}"`` template or a callable."""
    if callable(template):
        name = template()
        if not isinstance(name, str):
            raise TypeError(f"The run-name callable of {owner} must return a str, got {name!r}.")
        return name
    try:
        return template.format(**parameters)
    except (KeyError, IndexError) as exc:
        raise ParameterTypeError(
            f"The run-name template {template!r} of {owner} names {exc}, which is not one of "
            f"its parameters {sorted(parameters)}."
        ) from None
