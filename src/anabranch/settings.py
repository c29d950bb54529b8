"""Settings read from ``ANABRANCH_*`` environment variables.

Settings are read when asked for, never at import, so a test or a process can change its
environment (for example ``ANABRANCH_HOME``) and the next run picks it up. The model lives in
``anabranch._settings`` and is imported on first use: pydantic-settings costs about 16 ms to
import, which ``import anabranch`` should not pay.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anabranch._settings import Settings


def get_settings() -> Settings:
    """Read the settings from the environment as it is now."""
    return importlib.import_module("anabranch._settings").Settings()


def __getattr__(name: str) -> Any:
    if name == "Settings":
        return importlib.import_module("anabranch._settings").Settings
    raise AttributeError(f"module 'anabranch.settings' has no attribute {name!r}")
