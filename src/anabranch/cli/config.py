"""`anabranch config ...`: the effective settings and where the store is."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import typer

from anabranch._redact import mask_passwords
from anabranch.cli import render
from anabranch.settings import Settings, get_settings

app = typer.Typer(help="Show the effective settings.", no_args_is_help=True)

_SECRET_FIELDS = frozenset({"api_key", "secret_key"})


@app.command()
def view() -> None:
    """Each setting's effective value and whether it came from the environment; passwords in
    URLs and the API key are masked."""
    settings = get_settings()
    rows = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            shown = "(unset)"
        elif name in _SECRET_FIELDS:
            shown = "********"
        else:
            shown = mask_passwords(str(value))
        source = "environment" if name in settings.model_fields_set else "default"
        rows.append((f"ANABRANCH_{name.upper()}", shown, source))
    render.settings_table(rows, _describe_store(settings))


def _describe_store(settings: Settings) -> str:
    if settings.api_url:
        return f"server at {mask_passwords(settings.api_url)}"
    url = settings.resolved_database_url
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        path = Path(parts.path[1:])  # sqlite:///relative or sqlite:////absolute
        state = "exists" if path.is_file() else "not created yet"
        return f"{url} (SQLite file {path}, {state})"
    return mask_passwords(url)
