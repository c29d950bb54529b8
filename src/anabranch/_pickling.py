"""Pickle module-level flows and tasks by reference, so a child process imports them instead
of receiving a copy of their function and everything its globals reach."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def _import_object(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def reduce_by_reference(obj: object, fn: Callable[..., Any]) -> tuple | None:
    """``(import it, (module, qualname))`` when ``obj`` is what its module names, else None."""
    module = sys.modules.get(fn.__module__)
    if module is None or "<locals>" in fn.__qualname__:
        return None
    try:
        found = _import_object_from(module, fn.__qualname__)
    except AttributeError:
        return None
    return (_import_object, (fn.__module__, fn.__qualname__)) if found is obj else None


def _import_object_from(module: Any, qualname: str) -> Any:
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
