"""`mtw download`: fetch a base model from the Hugging Face Hub with a progress bar (thin edge over tools.download)."""

from __future__ import annotations

import json
import shlex
import time
from typing import Any, NoReturn

import typer

from tools.errors import MTWError, UsageError


def download(
    model: str = typer.Argument(..., help="Catalog name (qwen2.5-0.5b, phi4-mini …) or Hugging Face id (owner/name)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (no progress bar)."),
) -> None:
    """Download a base model's weights, tokenizer and config from the Hugging Face Hub.

    Only what training and export read is fetched (no GGUF, ONNX or original/ copies).
    Stopped or cut off? Run it again: it continues where it stopped. Already here? It returns at once, offline.
    """
    from rich.console import Console

    from tools.download import bytes_here, human_bytes, plan_download
    from tools.download import download as fetch

    console = Console(highlight=False, soft_wrap=True)
    _quiet_hub()
    plan = None
    try:
        plan = plan_download(model)
        if not as_json:
            _describe(console, plan)
            if not plan.complete:
                _ollama_note(console, model)
        folder = fetch(model, plan=plan) if as_json or plan.complete else _with_bar(console, model, plan)
    except MTWError as exc:
        _fail(exc, as_json, 2 if isinstance(exc, UsageError) else 1)
    except KeyboardInterrupt:
        here = f" from {human_bytes(bytes_here(plan))}" if plan is not None else ""
        typer.echo(f"stopped. What arrived is kept: run `mtw download {shlex.quote(str(model))}` again to "
                   f"continue{here}.", err=True)
        raise typer.Exit(130) from None
    if as_json:
        typer.echo(json.dumps({"ok": True, **plan.as_dict(), "folder": str(folder), "complete": True}, indent=2))
        raise typer.Exit(0)
    console.print(f"[green]ready:[/] train with `mtw train --model {model} --data DATA --out RUN_DIR`  "
                  f"[dim](files in {folder})[/]")


def _ollama_note(console: Any, model: str) -> None:
    """Say so when training would not need this download: the user's Ollama already holds the model."""
    from tools.models.catalog import find_in_catalog

    entry = find_in_catalog(model)
    if entry is None or not entry.ollama_tag:
        return
    from tools.ollama_api import gguf_blob

    if gguf_blob(entry.ollama_tag) is not None:
        console.print(f"[dim]'{entry.ollama_tag}' is already in your Ollama: `mtw train --model {model}` trains on it "
                      "without this download (stop with Ctrl-C). Downloading the Hugging Face weights anyway.[/]")


def _describe(console: Any, plan: Any) -> None:
    from tools.download import human_bytes

    if plan.complete:
        console.print(f"{plan.model} is already downloaded: {human_bytes(plan.total_bytes)} "
                      f"in {plan.folder}")
        return
    here = plan.total_bytes - plan.missing_bytes
    resumed = f", {human_bytes(here)} of it already here" if here else ""
    named = plan.repo_id if plan.model == plan.repo_id else f"{plan.model} → {plan.repo_id}"
    console.print(f"[bold]{named}[/]: {len(plan.files)} files, "
                  f"{human_bytes(plan.total_bytes)}{resumed}, into {plan.cache_dir}")
    console.print("[dim]" + ", ".join(f.name for f in plan.files) + "[/]")
    if plan.gated:
        console.print(f"[yellow]{plan.repo_id} asks you to accept its licence first[/] "
                      f"(https://huggingface.co/{plan.repo_id}, then `hf auth login`).")


def _with_bar(console: Any, model: str, plan: Any) -> Any:
    """Download with a rich bar on a terminal, or one line per finished file otherwise (logs, the UI)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from tools.download import ROUTINE, human_bytes
    from tools.download import download as fetch

    names = {f.name for f in plan.files}
    if not console.is_terminal:
        started = time.monotonic()
        last = {"name": ""}

        def line(status: str, done: int, total: int) -> None:
            if status in names and status != last["name"]:
                last["name"] = status
                console.print(f"  {status}", highlight=False)
            elif status not in names and status not in ROUTINE:  # a sentence for the user
                console.print(f"  {status}", highlight=False)

        folder = fetch(model, line, plan=plan)
        console.print(f"downloaded {human_bytes(plan.missing_bytes)} in {time.monotonic() - started:.0f}s")
        return folder
    with Progress(TextColumn("[bold]download"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), TextColumn("[dim]{task.fields[file]}"), console=console) as bar:
        task = bar.add_task("download", total=plan.total_bytes, completed=plan.total_bytes - plan.missing_bytes,
                            file="")

        def draw(status: str, done: int, total: int) -> None:
            if status in names or status in ROUTINE:
                bar.update(task, completed=done, file=status)
            else:
                bar.update(task, completed=done)
                bar.console.print(f"  {status}", highlight=False)

        return fetch(model, draw, plan=plan)


def _fail(exc: MTWError, as_json: bool, code: int) -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"ok": False, "error": {"code": exc.code, "message": exc.message, "fix": exc.fix}},
                              indent=2))
    else:
        typer.secho(f"{exc.message}\n→ {exc.fix}", fg="red", err=True)
    raise typer.Exit(code)


def _quiet_hub() -> None:
    """huggingface_hub's own warnings ("trying to resume download…") are not for the user: progress says it."""
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()
