"""Build schema objects from values the engine already trusts, without validation.

``model_construct`` spends most of its time inspecting default factories; on the task hot
path that costs more than the rest of the run's bookkeeping, so this does the same work
directly: plain defaults are copied from a per-class cache, factories are simply called.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_set = object.__setattr__
_defaults: dict[type, tuple[dict[str, Any], tuple[tuple[str, Any], ...]]] = {}


def _class_defaults(cls: type[BaseModel]) -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]]:
    plain: dict[str, Any] = {}
    factories: list[tuple[str, Any]] = []
    for name, info in cls.model_fields.items():
        if info.default_factory is not None:
            factories.append((name, info.default_factory))
        elif not info.is_required():
            plain[name] = info.default
    cached = _defaults[cls] = (plain, tuple(factories))
    return cached


def construct(cls: type[M], **values: Any) -> M:
    """An instance of ``cls`` holding ``values``; missing fields take their defaults."""
    plain, factories = _defaults.get(cls) or _class_defaults(cls)
    data = plain.copy()
    data.update(values)
    for name, factory in factories:
        if name not in values:
            data[name] = factory()
    obj = object.__new__(cls)
    _set(obj, "__dict__", data)
    _set(obj, "__pydantic_fields_set__", set(values))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj
