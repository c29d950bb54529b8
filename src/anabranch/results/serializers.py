"""Serializers by name. This is the only module that imports cloudpickle, and only when a
value is first (de)serialized with it: processes that never do (the server) never load it."""

from __future__ import annotations

import importlib
import json
from typing import Any, Protocol

from pydantic_core import to_jsonable_python

from anabranch.exceptions import SerializationError


class Serializer(Protocol):
    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, blob: bytes) -> Any: ...


class CloudpickleSerializer:
    """Any Python object cloudpickle can handle, including lambdas and local classes."""

    name = "cloudpickle"

    def dumps(self, value: Any) -> bytes:
        return _cloudpickle().dumps(value)

    def loads(self, blob: bytes) -> Any:
        return _cloudpickle().loads(blob)


class JSONSerializer:
    """Portable results; pydantic models, dates and the like become plain JSON."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(to_jsonable_python(value)).encode()

    def loads(self, blob: bytes) -> Any:
        return json.loads(blob)


_SERIALIZERS: dict[str, Serializer] = {
    "cloudpickle": CloudpickleSerializer(),
    "pickle": CloudpickleSerializer(),
    "json": JSONSerializer(),
}


def _cloudpickle() -> Any:
    return importlib.import_module("cloudpickle")


def get_serializer(name: str | Serializer) -> Serializer:
    """Look a serializer up by name ("cloudpickle", "pickle", "json") or pass one through."""
    if not isinstance(name, str):
        return name
    try:
        return _SERIALIZERS[name]
    except KeyError:
        raise SerializationError(
            f"Unknown result serializer {name!r}; use one of {sorted(_SERIALIZERS)}."
        ) from None


def dumps_or_explain(serializer: Serializer, value: Any, owner: str) -> bytes:
    """Serialize, turning any failure into an error that names the run and the way out."""
    try:
        return serializer.dumps(value)
    except Exception as exc:
        raise SerializationError(
            f"The result of {owner} ({type(value).__name__}) could not be serialized with "
            f"{serializer.name!r}: {exc}. Return a serializable value, choose another "
            "result_serializer, or set persist_result=False."
        ) from exc

