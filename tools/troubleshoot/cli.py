"""`mtw explain` (placeholder until the knowledge base lands)."""

from __future__ import annotations

import typer


def explain() -> None:
    """Answer a question from the troubleshooting knowledge base."""
    typer.echo("`mtw explain` is not available yet.", err=True)
    raise typer.Exit(2)
