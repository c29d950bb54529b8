"""Events: something that happened to a resource, told in labels automations can match.

Shaped as Prefect's: an event has a name (``anabranch.flow-run.Failed``), the resource it
happened to (labels, with ``anabranch.resource.id`` such as ``anabranch.flow-run.<id>``),
related resources in roles (the flow, deployment, work pool, tags, parent run) and a payload.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from anabranch import _clock
from anabranch._ids import new_id

_LAZY = ConfigDict(defer_build=True)

RESOURCE_ID = "anabranch.resource.id"
RESOURCE_NAME = "anabranch.resource.name"
RESOURCE_ROLE = "anabranch.resource.role"


class Resource(RootModel[dict[str, str]]):
    """A resource's labels; ``id`` and ``name`` are the two every resource may carry."""

    model_config = _LAZY

    @field_validator("root")
    @classmethod
    def _has_an_id(cls, labels: dict[str, str]) -> dict[str, str]:
        if not labels.get(RESOURCE_ID):
            raise ValueError(f"a resource needs the label {RESOURCE_ID!r}")
        return labels

    @property
    def id(self) -> str:
        return self.root[RESOURCE_ID]

    @property
    def name(self) -> str | None:
        return self.root.get(RESOURCE_NAME)

    @property
    def role(self) -> str | None:
        return self.root.get(RESOURCE_ROLE)

    def get(self, label: str, default: str | None = None) -> str | None:
        return self.root.get(label, default)

    def __getitem__(self, label: str) -> str:
        return self.root[label]

    def __contains__(self, label: object) -> bool:
        return label in self.root


class RelatedResource(Resource):
    """A resource an event concerns in a ``role`` (flow, deployment, tag, ...)."""

    @field_validator("root")
    @classmethod
    def _has_a_role(cls, labels: dict[str, str]) -> dict[str, str]:
        if not labels.get(RESOURCE_ROLE):
            raise ValueError(f"a related resource needs the label {RESOURCE_ROLE!r}")
        return labels


class Event(BaseModel):
    """One thing that happened."""

    model_config = _LAZY

    id: uuid.UUID = Field(default_factory=new_id)
    occurred: datetime = Field(default_factory=_clock.now)
    event: str = Field(min_length=1, max_length=1024)
    resource: Resource
    related: list[RelatedResource] = Field(default_factory=list)
    payload: dict[str, Any] = Field(default_factory=dict)

    def related_in(self, role: str) -> list[RelatedResource]:
        """The related resources in ``role``."""
        return [r for r in self.related if r.role == role]

    def related_id(self, role: str) -> str | None:
        """The id of the first related resource in ``role``, or None."""
        found = self.related_in(role)
        return found[0].id if found else None


class EventPage(BaseModel):
    """Events in the order asked for; where the next page starts (``next_after``, a
    position to pass back as ``after``) and the feed's newest position when it was read
    (``end``: pass it as ``after`` to follow only what happens next)."""

    model_config = _LAZY

    events: list[Event]
    next_after: int | None = None
    end: int = 0


def label_matches(pattern: str, value: str | None) -> bool:
    """Whether ``value`` fits ``pattern``, where ``*`` stands for any run of characters
    (a ``!`` in front negates)."""
    if pattern.startswith("!"):
        return not label_matches(pattern[1:], value)
    if value is None:
        return False
    if "*" not in pattern:
        return pattern == value
    return _glob(pattern).fullmatch(value) is not None


_GLOBS: dict[str, re.Pattern[str]] = {}


def _glob(pattern: str) -> re.Pattern[str]:
    compiled = _GLOBS.get(pattern)
    if compiled is None:
        compiled = re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
        if len(_GLOBS) < 4096:
            _GLOBS[pattern] = compiled
    return compiled
