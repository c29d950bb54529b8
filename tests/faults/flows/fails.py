"""A flow that fails at once with ``ValueError(MESSAGE)``; prints its run id first as
``RUN <id>``."""

import argparse
import contextlib

from anabranch import flow
from anabranch.context import FlowRunContext

parser = argparse.ArgumentParser()
parser.add_argument("message")
args = parser.parse_args()


@flow(name="fails")
def fails(message: str) -> None:
    print(f"RUN {FlowRunContext.get().flow_run.id}", flush=True)
    raise ValueError(message)


if __name__ == "__main__":
    with contextlib.suppress(ValueError):
        fails(args.message)
