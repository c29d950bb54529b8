# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
from anabranch import flow, task
from anabranch.deployments import run_deployment

@task
def trigger_child(i: int):
    return run_deployment(
        name="Child Flow/child-deployment",
        parameters={"x": i},
        as_subflow=True,  # records parent/child relationship
    )

@flow
def parent_flow():
    futs = [trigger_child.submit(i) for i in range(100)]
    return [f.result() for f in futs]
