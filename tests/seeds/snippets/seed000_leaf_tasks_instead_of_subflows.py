# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
from anabranch import flow, task


def compute_items(x):  # not in the seed, which leaves it to the reader
    return range(x)


@task
def leaf_step(x): ...
@flow
def child_flow(x):
    # fan out tasks instead of calling another subflow
    futs = [leaf_step.submit(y) for y in compute_items(x)]
    return [f.result() for f in futs]
