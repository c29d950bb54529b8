# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
from anabranch import flow, task

@flow
def child_flow(x: int) -> int:
    return x * 2

@task(tags=["child-subflow"])
def run_child(x: int) -> int:
    return child_flow(x)

@flow
def parent_flow():
    futs = [run_child.submit(i) for i in range(100)]
    return [f.result() for f in futs]
