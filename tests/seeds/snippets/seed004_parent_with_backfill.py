# ruff: noqa
# A seed snippet as users wrote it (prefect -> anabranch); tests/seeds/test_seed_snippets.py runs it.
from datetime import date
from anabranch import flow
import pandas as pd
from anabranch.deployments import run_deployment
@flow(log_prints=True)
def extract(start_date: date, end_date: date) -> pd.DataFrame:
    print(f"Running ingestion from {start_date} to {end_date}")
    return pd.DataFrame(data={"Users": ["Marvin", "LiveEO"]})
@flow(log_prints=True)
def transform_load():
    print(f"Got data: {df}")
@flow(log_prints=True)
def cleanup():
    print("Cleanup process")
# parametrized for backfills
@flow(log_prints=True)
def parent(start_date: date = date(2022, 12, 1), end_date: date = date.today()):
    df = extract(start_date, end_date)
    run_deployment(name="transform-load/dev")
    cleanup()
if __name__ == "__main__":
    parent()
