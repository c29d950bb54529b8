"""One object per store per process (a client, a recorder, a slot broker), found by the
store the environment points at now."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from anabranch.settings import get_settings

if TYPE_CHECKING:
    from anabranch._settings import Settings

T = TypeVar("T")

_STORE_VARIABLES = ("ANABRANCH_API_URL", "ANABRANCH_DATABASE_URL", "ANABRANCH_HOME")
_store_keys: dict[tuple[str | None, ...], str] = {}


def current_store_key() -> str:
    """Which store the environment points at now (API URL or database URL), cheaply: per-run
    code asks this often, and parsing the settings each time would cost more than the run."""
    env = tuple(os.environ.get(name) for name in _STORE_VARIABLES)
    key = _store_keys.get(env)
    if key is None:
        settings = get_settings()
        key = _store_keys[env] = settings.api_url or settings.resolved_database_url
    return key


class PerStore(Generic[T]):
    """One ``T`` per store per process (a recorder, a slot broker), built on first use for
    the store the environment points at now; cheap to ask for on every run."""

    def __init__(self, build: Callable[[Settings], T]) -> None:
        self._build = build
        self._made: dict[str, T] = {}
        self._lock = threading.Lock()

    def get(self) -> T:
        key = current_store_key()
        made = self._made.get(key)
        if made is None:
            with self._lock:
                made = self._made.get(key)
                if made is None:
                    made = self._made[key] = self._build(get_settings())
        return made

    def all(self) -> list[T]:
        """Every one made so far in this process."""
        return list(self._made.values())
