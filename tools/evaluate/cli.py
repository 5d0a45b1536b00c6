"""`mtw eval` (placeholder until evaluation lands)."""

from __future__ import annotations

import typer


def eval_run() -> None:
    """Compare the tuned model with its base."""
    typer.echo("`mtw eval` is not available yet.", err=True)
    raise typer.Exit(2)
