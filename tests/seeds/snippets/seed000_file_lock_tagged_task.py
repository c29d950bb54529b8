# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
# With `anabranch concurrency-limit create my-shared-file 1`.
@task(tags=["my-shared-file"])
def write_file(x: int): ...
