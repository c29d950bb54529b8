# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
from anabranch.concurrency.sync import concurrency

@flow
def child_flow(x):
    # compute freely...
    with concurrency("my-shared-file"):   # keep the critical section minimal
        write_to_file(x)
