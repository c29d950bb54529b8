# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
from anabranch import flow
from anabranch.task_runners import ThreadPoolTaskRunner

@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
def child_flow(i: int): ...

@flow(task_runner=ThreadPoolTaskRunner(max_workers=5))
def parent_flow(): ...
