"""The settings model, built on pydantic-settings (imported through ``anabranch.settings``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting anabranch reads, with its environment variable ``ANABRANCH_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ANABRANCH_", extra="ignore")

    home: Path = Field(default=Path("~/.anabranch"), description="Where the embedded store lives.")
    api_url: str | None = Field(default=None, description="Server API URL; unset means embedded.")
    api_key: str | None = Field(default=None, description="Bearer key for the server API.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; defaults to SQLite at $ANABRANCH_HOME."
    )
    logging_level: str = Field(default="INFO", description="Level of the console run logs.")
    logging_engine_frames: bool = Field(
        default=False, description="Show anabranch's own frames in the tracebacks of failed "
        "runs (they are folded out by default, leaving the user's code)."
    )
    results_storage: str | None = Field(
        default=None, description="Default result storage path or fsspec URL."
    )
    results_trusted_storage: str | None = Field(
        default=None, description="More result storage locations (paths or fsspec URLs, "
        "comma-separated) results may be read from, besides $ANABRANCH_HOME/storage, "
        "ANABRANCH_RESULTS_STORAGE and the result_storage this process's own flows and tasks "
        "write to; a stored result reference pointing anywhere else is refused."
    )
    recorder_flush_interval: float = Field(
        default=0.05, description="Seconds between background writes of run records."
    )
    client_retry_seconds: float = Field(
        default=60.0, ge=0, description="How long a request to the store is retried while the "
        "server or database is unreachable; run records not stored by then wait in "
        "$ANABRANCH_HOME/spool for a later delivery."
    )
    heartbeat_seconds: float = Field(
        default=10.0, gt=0, description="How often a process records that its Running flow "
        "runs are alive; the server crashes runs silent for several of these."
    )
    concurrency_lease_seconds: float = Field(
        default=30.0, gt=0, description="Time-to-live of a concurrency slot lease; renewed by "
        "its holder every third of it, freed this long after a holder dies."
    )
    scheduler_seconds: float = Field(
        default=10.0, gt=0, description="How often the server's scheduler makes the upcoming "
        "runs of scheduled deployments and marks overdue runs Late."
    )
    server_max_body_bytes: int = Field(
        default=8 * 1024 * 1024, gt=0, description="The largest request body the server "
        "accepts; a larger one is refused with 413 before it is read."
    )
    server_body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="How long the server waits for a request body to "
        "arrive in full; a slower one is refused with 408 and its connection closed."
    )

    secret_key: SecretStr | None = Field(
        default=None, description="The key that seals automations' notification URLs and "
        "headers in the database (Fernet); default: one made in $ANABRANCH_HOME/secret.key. "
        "Every process using one database needs the same key."
    )
    ui_url: str | None = Field(
        default=None, description="The web UI's address as people reach it, for the links "
        "in notifications; default: the address `anabranch server start` listens on."
    )
    events_retention_days: float = Field(
        default=7.0, gt=0, description="How long the server keeps events; the runs and "
        "their state history stay."
    )
    automations_poll_seconds: float = Field(
        default=0.25, gt=0, description="How often the server looks for new events to "
        "evaluate automations on, and for actions due."
    )
    automation_action_attempts: int = Field(
        default=5, ge=1, description="How many times an automation's action (a notification, "
        "a webhook) is tried before it is recorded as failed."
    )
    automation_retry_seconds: float = Field(
        default=2.0, gt=0, description="The wait before an action's second attempt; it "
        "doubles with each further attempt."
    )

    @property
    def home_path(self) -> Path:
        return self.home.expanduser()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_path / 'anabranch.db'}"

    @property
    def resolved_results_storage(self) -> str:
        return self.results_storage or str(self.home_path / "storage")

