# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
from anabranch import flow, task
from anabranch.task_runners import ThreadPoolTaskRunner

@flow  # default runner (effectively sequential inside child)
def child_flow(i: int):
    # do child work (optionally with a few tasks)
    ...

@task
def run_child(i: int):
    return child_flow(i)

@flow(task_runner=ThreadPoolTaskRunner(max_workers=10))
def parent_flow():
    futs = [run_child.submit(i) for i in range(50)]
    return [f.result() for f in futs]
