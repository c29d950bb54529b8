"""UNSET: "not given", where None is a value (``concurrency_limit=None`` clears a limit)."""

from __future__ import annotations

import enum
from typing import Literal


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset.UNSET
# The type of UNSET, for a parameter that may be left out where None means something.
Unset = Literal[_Unset.UNSET]
