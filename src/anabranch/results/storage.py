"""Write and read results through fsspec, so a folder or any fsspec URL can hold them.

A result is read back through the ResultRef a run's state holds. That reference comes from
the store, which any API client may write, and the serializer may be cloudpickle, which runs
code while loading. So ``load_result`` only reads from trusted locations (this process's
default storage, ANABRANCH_RESULTS_STORAGE, ANABRANCH_RESULTS_TRUSTED_STORAGE and the
``result_storage`` its own flows and tasks wrote to), and only with the serializer the
reference names, after checking that the file says it was written with that one.
"""

from __future__ import annotations

import importlib
import json
import os
import posixpath
from datetime import datetime
from typing import Any

from anabranch import _clock
from anabranch._private import open_private, private_dir
from anabranch.exceptions import (
    MissingResult,
    SerializationError,
    StoreUnusable,
    UntrustedResultStorage,
)
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
        path, local = self._path(key), _is_local(self._fs)
        try:
            # Results are the user's data: on this machine a private folder and files.
            if not self._made_root and local:
                private_dir(self._root)
            elif not self._made_root:
                self._fs.makedirs(self._root, exist_ok=True)
            self._made_root = True
            with open_private(path, "wb") if local else self._fs.open(path, "wb") as fh:
                fh.write(header + _HEADER_END + payload)
        except OSError as exc:
            if not local:
                raise
            raise StoreUnusable(
                f"The result of {owner} can not be written to {self.location} "
                f"({exc.strerror or exc}: {exc.filename}); make that folder writable, or "
                "point ANABRANCH_RESULTS_STORAGE (or ANABRANCH_HOME) to a place you can write."
            ) from exc
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

    def read_cached(
        self, key: str, serializer: str | Serializer | None = None
    ) -> tuple[bool, Any]:
        """(True, value) for an unexpired entry under ``key``, else (False, None). With
        ``serializer``, an entry written with another serializer is no entry: it is never
        loaded with the serializer its own header names."""
        if not self._fs.exists(self._path(key)):
            return False, None
        try:
            header, payload = self.read(key)
            written_with = str(header["serializer"])
        except (MissingResult, ValueError, KeyError, TypeError):
            return False, None
        if serializer is not None and _canonical(written_with) != _canonical(serializer):
            return False, None
        expires = header.get("expires")
        if expires and datetime.fromisoformat(expires) <= _clock.now():
            return False, None
        return True, _loads(serializer or written_with, payload, f"{self.location}/{key}")


def _loads(serializer: str | Serializer, payload: bytes, where: str) -> Any:
    ser = get_serializer(serializer)
    try:
        return ser.loads(payload)
    except Exception as exc:
        raise SerializationError(
            f"The result at {where} could not be read with {ser.name!r}: {exc}"
        ) from exc


def _canonical(serializer: str | Serializer) -> str:
    """The serializer's own name ("pickle" is cloudpickle), or the name as given if unknown."""
    try:
        return get_serializer(serializer).name
    except SerializationError:
        return str(serializer)


_stores: dict[str, ResultStore] = {}
_default_location: dict[tuple[str | None, str | None], str] = {}
# Locations this process's own code named as result_storage: trusted for reading back.
_named_locations: set[str] = set()


def result_store(location: str | None = None) -> ResultStore:
    """The store for ``location``, or the default one (``$ANABRANCH_HOME/storage``). A
    location named here is one this process may read results from (see ``load_result``)."""
    if location is None:
        env_key = (os.environ.get("ANABRANCH_RESULTS_STORAGE"), os.environ.get("ANABRANCH_HOME"))
        location = _default_location.get(env_key)
        if location is None:
            location = _default_location[env_key] = get_settings().resolved_results_storage
    else:
        trust_result_storage(location)
    store = _stores.get(location)
    if store is None:
        store = _stores[location] = ResultStore(location)
    return store


def trust_result_storage(location: str) -> None:
    """Let ``load_result`` read results from ``location`` (a path or fsspec URL) in this
    process: for storage the process's own code chose, as ``result_storage=`` does."""
    _named_locations.add(location.rstrip("/") or location)


def load_result(ref: ResultRef) -> Any:
    """Read back the value a ResultRef points at, in any process that can reach its storage.

    UntrustedResultStorage if the reference points outside the trusted locations;
    SerializationError if the file says it was written with another serializer than the
    reference names (it is never loaded with the file's own choice)."""
    where = f"{ref.storage}/{ref.key}"
    try:
        serializer = get_serializer(ref.serializer)
    except SerializationError as exc:
        raise SerializationError(f"The result at {where} was not loaded: {exc}") from None
    _check_trusted(ref, where)
    try:
        header, payload = ResultStore(ref.storage).read(ref.key)
        written_with = str(header["serializer"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SerializationError(
            f"The file at {where} is not a result anabranch wrote (its header line does not "
            f"name a serializer: {exc}); it was not loaded."
        ) from exc
    if _canonical(written_with) != serializer.name:
        raise SerializationError(
            f"The result at {where} was not loaded: its reference says it was written with "
            f"{ref.serializer!r}, but the file says {written_with!r}. The file or the "
            "reference was replaced; only a file whose header matches its reference is read."
        )
    return _loads(serializer, payload, where)


def trusted_result_storage() -> list[str]:
    """Where ``load_result`` may read from in this process, as configured and named."""
    settings = get_settings()
    locations = [str(settings.home_path / "storage"), settings.resolved_results_storage]
    extra = settings.results_trusted_storage or ""
    locations += [part.strip() for part in extra.split(",") if part.strip()]
    locations += sorted(_named_locations)
    return list(dict.fromkeys(locations))


def _check_trusted(ref: ResultRef, where: str) -> None:
    target = _place(f"{ref.storage.rstrip('/')}/{ref.key}")
    trusted = trusted_result_storage()
    for location in trusted:
        root = _place(location)
        if root[0] == target[0] and _within(target[1], root[1]):
            return
    raise UntrustedResultStorage(
        f"Refused to read the result at {where}: it is outside the result storage this "
        f"process trusts ({', '.join(trusted)}). Result references come from the store, "
        "which any API client can write, and loading a result can run code. If results "
        f"there are yours, add {ref.storage} to ANABRANCH_RESULTS_TRUSTED_STORAGE "
        "(comma-separated locations)."
    )


def _place(location: str) -> tuple[str, str]:
    """(protocol, normalized path) of a local path or fsspec URL, from the text alone: an
    untrusted location is refused before any filesystem is made for it (some connect)."""
    protocol, sep, path = location.partition("://")
    if not sep:
        protocol, path = "file", location
    protocol = protocol.lower()
    if protocol in ("file", "local"):
        return "file", os.path.realpath(os.path.expanduser(path))
    return protocol, posixpath.normpath(path)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol
    return "file" in (protocol if isinstance(protocol, (tuple, list)) else (protocol,))
