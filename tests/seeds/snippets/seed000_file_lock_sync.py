# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
# After `anabranch concurrency-limit create my-shared-file 1`.
from anabranch.concurrency.sync import concurrency

@flow
def child_flow(x: int):
    # ... prep work ...
    with concurrency("my-shared-file"):
        with open("/path/to/local.file", "a+") as f:
            f.write(f"{x}\n")
    # ... post work ...
