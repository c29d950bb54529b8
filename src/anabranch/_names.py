"""Readable generated names for flow runs, like ``crimson-fox``."""

from __future__ import annotations

import random

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


def generate_flow_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}"
