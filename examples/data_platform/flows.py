"""The data platform's child flows. Each is deployed on its own (`anabranch deploy
flows.py:extract --name dev --pool data-platform`, ...) and runs on a worker, in a process
(and, with the `python` job variable, a virtual environment) of its own; the parent in
parent.py never imports this file."""

from __future__ import annotations

from datetime import date

from anabranch import flow


@flow(log_prints=True)
def extract(start_date: date, end_date: date) -> list[dict]:
    print(f"Running ingestion from {start_date} to {end_date}")
    return [{"user": "Marvin"}, {"user": "LiveEO"}]


@flow(log_prints=True)
def transform_load(rows: list[dict] | None = None, fail: bool = False) -> int:
    # Deployed as "transform-load/dev": a flow's name is its function's, with - for _.
    print(f"Got data: {rows}")
    if fail:
        raise ValueError("Non-deterministic error has occured.")
    return len(rows or [])


@flow(log_prints=True)
def cleanup() -> None:
    print("Cleanup process")
