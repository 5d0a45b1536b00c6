"""`mtw check`: the dataset report (placeholder until the dataset engine lands)."""

from __future__ import annotations

from pathlib import Path

import typer


def check(
    data: Path = typer.Argument(..., help="Dataset file (JSONL, JSON, CSV, TSV)."),
    model: str = typer.Option(None, "--model", help="Count tokens with this model's tokenizer."),
    context: int = typer.Option(None, "--context", help="Context length to check against."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    fix: Path = typer.Option(None, "--fix", help="Write a cleaned copy here."),
) -> None:
    """Check a dataset and explain every problem with its line and fix."""
    typer.echo("`mtw check` is not available yet.", err=True)
    raise typer.Exit(2)
