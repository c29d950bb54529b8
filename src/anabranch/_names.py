"""Readable generated names for flow runs, like ``crimson-fox``."""

from __future__ import annotations

import random
import threading
from collections.abc import MutableSet

_ADJECTIVES = (
    "amber", "brave", "calm", "crimson", "daring", "eager", "fancy", "gentle", "golden",
    "hidden", "icy", "jolly", "keen", "lively", "mellow", "nimble", "olive", "proud", "quiet",
    "rapid", "silver", "steady", "tidy", "urban", "vivid", "witty", "young", "zealous",
)
_ANIMALS = (
    "badger", "beaver", "bison", "crane", "dingo", "egret", "falcon", "ferret", "gecko",
    "heron", "ibis", "jackal", "koala", "lemur", "lynx", "marten", "newt", "otter", "panda",
    "quail", "raven", "salmon", "tapir", "urchin", "vole", "walrus", "yak", "zebra",
)


_TRIES = 8
_lock = threading.Lock()


def generate_flow_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}"


def unique_flow_run_name(taken: MutableSet[str]) -> str:
    """A generated name not in ``taken`` (the names of one root run's tree, so siblings
    never share one), added to it. Past a few hundred runs the pairs run out, and a
    number tells them apart: ``crimson-fox-2``."""
    with _lock:
        name = generate_flow_run_name()
        for _ in range(_TRIES):
            if name not in taken:
                break
            name = generate_flow_run_name()
        base, number = name, 1
        while name in taken:
            number += 1
            name = f"{base}-{number}"
        taken.add(name)
        return name
