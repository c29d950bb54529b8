"""Write and read results through fsspec, so a folder or any fsspec URL can hold them."""

from __future__ import annotations

import importlib
import json
import os
from datetime import datetime
from typing import Any

from anabranch import _clock
from anabranch.exceptions import MissingResult, SerializationError
from anabranch.results.references import ResultRef
from anabranch.results.serializers import Serializer, dumps_or_explain, get_serializer
from anabranch.settings import get_settings

_HEADER_END = b"\n"


class ResultStore:
    """One storage location (a local path or fsspec URL) results are written to and read from.

    Each result is one file: a JSON header line (serializer, expiration) then the payload.
    The header makes a file usable as a cache entry without the database.
    """

    def __init__(self, location: str) -> None:
        self.location = location.rstrip("/")
        # fsspec costs about 20 ms to import; only processes that touch results pay it.
        fsspec_core = importlib.import_module("fsspec.core")
        self._fs, self._root = fsspec_core.url_to_fs(self.location)
        self._made_root = False

    def _path(self, key: str) -> str:
        return f"{self._root}/{key}"

    def write(
        self,
        value: Any,
        key: str,
        serializer: str | Serializer,
        owner: str,
        expires: datetime | None = None,
    ) -> ResultRef:
        ser = get_serializer(serializer)
        payload = dumps_or_explain(ser, value, owner)
        header = json.dumps(
            {"serializer": ser.name, "expires": expires.isoformat() if expires else None}
        ).encode()
        if not self._made_root:
            self._fs.makedirs(self._root, exist_ok=True)
            self._made_root = True
        with self._fs.open(self._path(key), "wb") as fh:
            fh.write(header + _HEADER_END + payload)
        return ResultRef(storage=self.location, key=key, serializer=ser.name)

    def reference(self, key: str, serializer: str | Serializer) -> ResultRef:
        return ResultRef(storage=self.location, key=key, serializer=get_serializer(serializer).name)

    def read(self, key: str) -> tuple[dict[str, Any], bytes]:
        try:
            with self._fs.open(self._path(key), "rb") as fh:
                blob = fh.read()
        except FileNotFoundError:
            raise MissingResult(
                f"No result stored at {self.location}/{key}; it was removed or never written."
            ) from None
        header, _, payload = blob.partition(_HEADER_END)
        return json.loads(header), payload

    def read_cached(self, key: str) -> tuple[bool, Any]:
        """(True, value) for an unexpired entry under ``key``, else (False, None)."""
        if not self._fs.exists(self._path(key)):
            return False, None
        try:
            header, payload = self.read(key)
        except (MissingResult, ValueError):
            return False, None
        expires = header.get("expires")
        if expires and datetime.fromisoformat(expires) <= _clock.now():
            return False, None
        return True, _loads(header["serializer"], payload, f"{self.location}/{key}")


def _loads(serializer: str, payload: bytes, where: str) -> Any:
    try:
        return get_serializer(serializer).loads(payload)
    except Exception as exc:
        raise SerializationError(
            f"The result at {where} could not be read with {serializer!r}: {exc}"
        ) from exc


_stores: dict[str, ResultStore] = {}
_default_location: dict[tuple[str | None, str | None], str] = {}


def result_store(location: str | None = None) -> ResultStore:
    """The store for ``location``, or the default one (``$ANABRANCH_HOME/storage``)."""
    if location is None:
        env_key = (os.environ.get("ANABRANCH_RESULTS_STORAGE"), os.environ.get("ANABRANCH_HOME"))
        location = _default_location.get(env_key)
        if location is None:
            location = _default_location[env_key] = get_settings().resolved_results_storage
    store = _stores.get(location)
    if store is None:
        store = _stores[location] = ResultStore(location)
    return store


def load_result(ref: ResultRef) -> Any:
    """Read back the value a ResultRef points at, in any process that can reach its storage."""
    header, payload = ResultStore(ref.storage).read(ref.key)
    return _loads(header.get("serializer", ref.serializer), payload, f"{ref.storage}/{ref.key}")
