# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
from anabranch import flow
from anabranch.utilities.asyncutils import gather

@flow
def child_flow(x: int) -> int:
    return x * 2

@flow
async def parent_flow():
    r1, r2, r3 = await gather(
        lambda: child_flow(1),
        lambda: child_flow(2),
        lambda: child_flow(3),
    )
    return [r1, r2, r3]
