# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
from anabranch import flow, task
from anabranch.deployments import run_deployment

@task
def trigger_child(i: int):
    # as_subflow=True records the parent/child relation in the UI
    # timeout/poll_interval control waiting behavior while the task runs
    return run_deployment(
        name="Child Flow/child-deployment",
        parameters={"x": i},
        as_subflow=True,
        timeout=3600,
        poll_interval=5,
    )

@flow
def parent_flow():
    futs = [trigger_child.submit(i) for i in range(100)]
    runs = [f.result() for f in futs]  # wait for each child run
    return runs
