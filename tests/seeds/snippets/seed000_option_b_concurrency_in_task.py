# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
# Needs the snippet above (child_flow) and `anabranch concurrency-limit create child-subflow 10`.
from anabranch.concurrency.sync import concurrency

@task
def run_child(x: int) -> int:
    with concurrency("child-subflow"):  # requires a concurrency limit with this name
        return child_flow(x)
