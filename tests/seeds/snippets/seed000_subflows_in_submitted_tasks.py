# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
from anabranch import flow, task
from anabranch.task_runners import ThreadPoolTaskRunner  # or ProcessPoolTaskRunner

@flow
def child_flow(x: int) -> int:
    # ... do work ...
    return x * 2

@task
def run_child(x: int) -> int:
    # Calling a flow inside a task creates a recorded subflow run
    return child_flow(x)

@flow(task_runner=ThreadPoolTaskRunner())
def parent_flow():
    futures = [run_child.submit(i) for i in range(5)]
    results = [f.result() for f in futures]
    return results
