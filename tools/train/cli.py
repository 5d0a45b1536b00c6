"""`mtw train` (placeholder until the training engine lands)."""

from __future__ import annotations

import typer


def train() -> None:
    """Fine-tune a base model on your dataset with LoRA."""
    typer.echo("`mtw train` is not available yet.", err=True)
    raise typer.Exit(2)
