# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
from anabranch import flow, task
from anabranch.task_runners import ThreadPoolTaskRunner

@flow(log_prints=False, persist_result=False)  # reduce overhead
def grandchild_flow(x): ...
@flow(log_prints=False, persist_result=False)
def child_flow(x): return grandchild_flow(x)

@task
def run_child(x): return child_flow(x)

@flow(task_runner=ThreadPoolTaskRunner(max_workers=20))
def parent_flow():
    futs = [run_child.submit(i) for i in range(100)]
    return [f.result() for f in futs]
