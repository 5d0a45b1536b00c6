"""`mtw check`: the dataset report in plain words, as JSON, and the --fix cleaned copy."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import typer
from rich.console import Console

from tools.errors import MTWError, storage_error


def check(
    data: Path = typer.Argument(..., help="Dataset file (JSONL, JSON, CSV, TSV)."),
    model: str = typer.Option(None, "--model", help="Count tokens with this model's tokenizer and chat template."),
    context: int = typer.Option(None, "--context", help="Context length to check against (default 4096)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    fix: Path = typer.Option(None, "--fix", help="Write a cleaned copy here (and a validation split next to it)."),
    format: str = typer.Option(None, "--format", help="Force the record format instead of detecting it: messages, "
                                                      "alpaca, sharegpt, prompt_completion, classification, ner."),
    drop_near_duplicates: bool = typer.Option(False, "--drop-near-duplicates",
                                              help="With --fix, also remove near-duplicates (kept by default)."),
    maps: list[str] = typer.Option([], "--map", help="Which column holds which field: --map text=SMS "
                                                     "--map label=Label (repeatable)."),
    dataset_info: Path = typer.Option(None, "--dataset-info", help="LLaMA-Factory dataset_info.json to read the "
                                                                   "column names from (with --dataset)."),
    dataset: str = typer.Option(None, "--dataset", help="The entry of --dataset-info that describes DATA."),
) -> None:
    """Check a dataset and explain every problem with its line and fix; exit 0 = no errors, 1 = errors."""
    from tools.dataset.checks import check_file
    from tools.dataset.readers import FORMATS

    console = Console()
    err = Console(stderr=True)
    if not data.is_file():
        _usage(err, f"No dataset file at {data}.", "Check the path; give a .jsonl, .json, .csv or .tsv file.")
    if context is not None and context < 16:
        _usage(err, f"--context {context} is too small.", "Give the model's context in tokens, e.g. --context 4096.")
    if format is not None and format not in FORMATS:
        _usage(err, f"Unknown --format '{format}'.", f"Use one of: {', '.join(FORMATS)}, or leave it out to detect.")
    try:
        from tools.dataset.mapping import column_map, ranking_format

        columns = column_map(maps, dataset_info, dataset)
        # a ranking entry's rows are chosen / rejected pairs, whatever their columns look like
        fmt = format or ranking_format(dataset_info, dataset)
        report = check_file(data, model=model, context=context, format=fmt, column_map=columns)
    except MTWError as exc:
        _usage(err, exc.message, exc.fix)
    fixed = None
    fix_failed: MTWError | None = None
    if fix is not None:
        from tools.dataset.fix import NothingToKeep, fix_dataset

        try:
            fixed = fix_dataset(data, fix, format=fmt, model=model, context=context,
                                drop_near_duplicates=drop_near_duplicates, column_map=columns)
        except NothingToKeep as exc:
            # the report still shows, so the user sees why nothing could be kept
            fix_failed = exc
        except MTWError as exc:
            _usage(err, exc.message, exc.fix)
        except OSError as exc:
            plain = storage_error(exc, Path(exc.filename or fix).parent, again="run the same command again")
            if plain is None:
                raise
            _usage(err, plain.message, plain.fix)
    if fixed is not None:
        after = check_file(fixed.train_path, model=model, context=context)
        report.stats["fix"] = {
            "train": str(fixed.train_path), "validation": str(fixed.validation_path) if fixed.validation_path else None,
            "train_examples": fixed.train_examples, "validation_examples": fixed.validation_examples,
            "changes": fixed.changes, "ok_after": after.ok, "summary_after": after.summary(),
        }
    if as_json:
        typer.echo(json.dumps(report.model_dump(), indent=2, ensure_ascii=False))
    else:
        from tools.dataset.report import render

        render(report, console, source=str(data))
        if fixed is not None:
            info = report.stats["fix"]
            console.print(f"\n[bold]Cleaned copy[/]: {fixed.train_path} ({fixed.train_examples} examples)"
                          + (f" + {fixed.validation_path} ({fixed.validation_examples})" if fixed.validation_path
                             else ""), highlight=False)
            for change in fixed.changes:
                console.print(f"  • {change}", highlight=False)
            colour = "green" if info["ok_after"] else "red"
            console.print(f"  [{colour}]Checked again: {info['summary_after']}[/]", highlight=False)
        elif not report.ok and fix_failed is None:
            from rich.markup import escape

            again = shlex.join(["mtw", "check", str(data), "--fix", "clean.jsonl"])
            console.print(f"\nTo write a cleaned copy: [bold]{escape(again)}[/]", highlight=False)
    if fix_failed is not None:
        err.print(f"[red]✘[/] {fix_failed.message}", highlight=False)
        err.print(f"  → {fix_failed.fix}", highlight=False)
        raise typer.Exit(1)
    raise typer.Exit(0 if report.ok else 1)


def _usage(err: Console, message: str, fix: str) -> None:
    err.print(f"[red]✘[/] {message}", highlight=False)
    if fix:
        err.print(f"  → {fix}", highlight=False)
    raise typer.Exit(2)
