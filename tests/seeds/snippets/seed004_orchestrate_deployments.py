# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
from anabranch import flow
from anabranch.deployments import run_deployment
@flow
def orchestrate():
    run_deployment(name="extract/dev")
    run_deployment(name="transform-load/dev")
    run_deployment(name="cleanup/dev")
if __name__ == "__main__":
    orchestrate()
