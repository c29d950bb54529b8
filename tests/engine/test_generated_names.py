"""Generated flow run names are unique within one root run's tree: 300 children of one
parent (more than the adjective-animal pairs make unlikely to collide) all differ."""

from __future__ import annotations

from anabranch import flow
from anabranch.client import get_client
from anabranch.client.recorder import flush_all


@flow
def child(i: int) -> int:
    return i


@flow
def grandparent() -> None:
    for i in range(3):
        parent(i)


@flow
def parent(n: int) -> None:
    for i in range(100):
        child(i)


def test_the_runs_of_one_tree_never_share_a_generated_name() -> None:
    grandparent()
    flush_all()
    runs = get_client().read_flow_runs(limit=1000)
    assert len(runs) == 304
    names = [run.name for run in runs]
    assert len(set(names)) == len(names)
