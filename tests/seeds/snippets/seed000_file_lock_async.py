# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
from anabranch.concurrency.asyncio import concurrency

@flow
async def child_flow(x: int):
    async with concurrency("my-shared-file"):
        # do async file I/O or call sync via a thread
        ...
