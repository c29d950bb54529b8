"""A flow that only stays Running (and so heartbeats) until the file GATE exists.

Prints ``READY`` once its body runs.
"""

import argparse
import time
from pathlib import Path

from anabranch import flow

parser = argparse.ArgumentParser()
parser.add_argument("--gate", required=True)
args = parser.parse_args()


@flow
def bystander(gate: str) -> str:
    print("READY", flush=True)
    deadline = time.monotonic() + 300
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return "opened"


if __name__ == "__main__":
    bystander(args.gate)
