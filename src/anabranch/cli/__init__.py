"""The `anabranch` command line: thin typer commands over the client, one module per noun."""

from anabranch.cli.app import app, main

__all__ = ["app", "main"]
