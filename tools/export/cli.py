"""`mtw export` and `mtw models` (placeholders until export lands)."""

from __future__ import annotations

import typer


def export() -> None:
    """Put a tuned model into Ollama."""
    typer.echo("`mtw export` is not available yet.", err=True)
    raise typer.Exit(2)


def models() -> None:
    """List the registered models."""
    typer.echo("`mtw models` is not available yet.", err=True)
    raise typer.Exit(2)
