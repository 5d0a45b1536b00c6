"""`mtw export` (a run or a project spec into Ollama) and `mtw models` (the registry)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from tools.errors import MTWError, UsageError, storage_error

console = Console()


def _fail(exc: MTWError, as_json: bool) -> typer.Exit:
    """Print a plain-language failure and the exit code for it (2 = usage, 1 = anything else)."""
    code = 2 if isinstance(exc, UsageError) else 1
    if as_json:
        typer.echo(json.dumps({"ok": False, "code": exc.code, "message": exc.message, "fix": exc.fix}, indent=2))
    else:
        console.print(f"[red]✘[/] {exc.message}")
        if exc.fix:
            console.print(f"  → {exc.fix}")
    return typer.Exit(code)


@contextmanager
def _progress(quiet: bool) -> Iterator[tuple[Callable[[str], None], Callable[[str, int, int], None]]]:
    """(say, progress) callbacks drawing a rich progress bar; silent when `quiet`."""
    from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    def nothing(*args: object) -> None:
        return None

    if quiet:
        yield nothing, nothing
        return
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TimeElapsedColumn(), console=console, transient=True)
    task = bar.add_task("starting", total=None)

    def progress(what: str, done: int, total: int) -> None:
        if total:
            bar.update(task, description=what, completed=done, total=total)
        else:
            bar.update(task, description=what, total=None)

    def say(text: str) -> None:
        bar.console.print(text, markup=False)

    with bar:
        yield say, progress


def _check_name(name: str, dry_run: bool) -> str:
    """The name to create: the next version for an unversioned name; refuse a taken versioned name."""
    from tools import registry
    from tools.export.names import check_name

    stem, version = registry.split_name(check_name(name))
    suggested = registry.suggest_name(name)
    if version is None:
        return check_name(suggested)  # the version added may make it too long
    if suggested != name and not dry_run:
        raise UsageError(f"'{name}' is already registered.",
                         f"Use --name {suggested} for the next version, or remove the old one with "
                         f"`{shlex.join(['mtw', 'models', '--delete', name])}`.")
    return name


def export(
    run_dir: Path = typer.Argument(None, help="The training run folder to export (omit with --from-spec)."),
    name: str = typer.Option(..., "--name", help="Model name in Ollama, e.g. PM-General-v1 (a version is added "
                                                 "when missing)."),
    route: str = typer.Option("auto", "--route", help="auto | adapter | gguf-adapter | merged | gguf "
                                                      "(auto picks and explains)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write RUN_DIR/export/ and print the commands; do not "
                                                          "contact Ollama."),
    from_spec: str = typer.Option(None, "--from-spec", help="Quick path: build a styled model from a project spec, "
                                                            "without training."),
    quantize: str = typer.Option(None, "--quantize", help="Quantise on create, e.g. q4_K_M (default: keep F16)."),
    data: Path = typer.Option(None, "--data", help="With --from-spec: take the few-shot examples from this dataset."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Put a tuned model (or a styled base model) into Ollama, check that it answers and stops, and register it."""
    from tools.export.pipeline import export_from_spec, export_run

    try:
        if (run_dir is None) == (from_spec is None):
            raise UsageError("Give either a RUN_DIR to export or --from-spec PROJECT, not both or neither.",
                             "e.g. `mtw export runs/pm-v1 --name PM-General-v1` or "
                             "`mtw export --from-spec 'PM user stories' --name PM-Style-v1`.")
        final = _check_name(name, dry_run)
        if final != name and not as_json:
            console.print(f"Registering as [bold]{final}[/] (versioned name).")
        with _progress(as_json) as (say, progress):
            if from_spec is not None:
                result = export_from_spec(from_spec, final, dry_run=dry_run, data=data, say=say, progress=progress)
            else:
                result = export_run(run_dir, final, route, dry_run=dry_run, quantize=quantize, say=say,
                                    progress=progress)
    except MTWError as exc:
        raise _fail(exc, as_json) from None
    except OSError as exc:  # a read-only or full disk where the export is written: a sentence, not a traceback
        plain = storage_error(exc, Path(exc.filename).parent if exc.filename else run_dir,
                              again="run the same command again")
        if plain is None:
            raise
        raise _fail(plain, as_json) from None
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        raise typer.Exit(0 if result.ok else 1)
    typer.echo(f"Modelfile: {result.modelfile}")
    if result.dry_run:
        typer.echo("Dry run: nothing was sent to Ollama. To create the model yourself:")
        # plain echo: a wrapped command could not be copied and pasted
        for cmd in result.commands:
            typer.echo(f"  {cmd}")
        raise typer.Exit(0)
    for c in result.checks:
        console.print(f"{'[green]✔[/]' if c.ok else '[red]✘[/]'} {c.message}")
        if c.fix:
            console.print(f"  → {c.fix}")
    if result.ok:
        console.print(f"[bold]{result.name}[/] is ready: `{shlex.join(['ollama', 'run', result.name])}`. Registered; "
                      "see `mtw models`.", highlight=False)
    else:
        console.print(f"[bold]{result.name}[/] was created and registered as not verified; fix the problems above "
                      "and export again.")
    raise typer.Exit(0 if result.ok else 1)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def models(
    as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON."),
    compare: tuple[str, str] = typer.Option(None, "--compare", metavar="A B", help="Two versions' eval reports "
                                                                                    "side by side."),
    promote: str = typer.Option(None, "--promote", metavar="NAME", help="Mark NAME as the version in use."),
    delete: str = typer.Option(None, "--delete", metavar="NAME", help="Remove NAME from the registry."),
    ollama: bool = typer.Option(False, "--ollama", help="With --delete: remove the model from Ollama too."),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --delete: do not ask for confirmation."),
) -> None:
    """List the registered models; compare two versions, promote one, or delete one."""
    from tools import registry

    try:
        if compare:
            cmp = registry.compare(*compare)
            if as_json:
                typer.echo(json.dumps(cmp.as_dict(), indent=2))
                return
            table = Table(title=f"{cmp.a.name} vs {cmp.b.name}")
            table.add_column("metric")
            table.add_column(cmp.a.name, justify="right")
            table.add_column(cmp.b.name, justify="right")
            for metric, a, b in cmp.rows:
                table.add_row(metric, _fmt(a), _fmt(b))
            if not cmp.rows:
                console.print("Neither model has an eval report yet: run `mtw eval RUN_DIR` on their runs.")
            else:
                console.print(table)
            return
        if promote:
            rec = registry.promote(promote)
            if as_json:
                typer.echo(json.dumps(rec.as_dict(), indent=2))
            else:
                console.print(f"[bold]{rec.name}[/] is now the promoted version of {rec.stem}.")
            return
        if delete:
            rec = registry.get(delete)
            what = f"'{rec.name}' from the registry" + (" and from Ollama" if ollama else "")
            if not yes and not typer.confirm(f"Delete {what}?", default=False):
                console.print("Nothing deleted.")
                raise typer.Exit(1)
            if ollama:
                from tools.export.create import delete_model

                if not delete_model(rec.ollama_tag):
                    console.print(f"Ollama had no model called '{rec.ollama_tag}'; removing the registry entry.")
            registry.delete(rec.name)
            console.print(f"Deleted {what}.")
            return
        records = registry.list_models()
    except MTWError as exc:
        raise _fail(exc, as_json) from None
    if as_json:
        typer.echo(json.dumps({"models": [r.as_dict() for r in records]}, indent=2))
        return
    if not records:
        console.print("No models registered yet. `mtw export RUN_DIR --name PM-General-v1` creates and registers one.")
        return
    table = Table(title="Registered models")
    table.add_column("name", no_wrap=True)
    for col in ("base", "route", "dataset", "trained", "verified"):
        table.add_column(col)
    table.add_column("created", no_wrap=True)
    for r in records:
        star = " ★" if r.promoted else ""
        trained = f"{r.method}, {r.judgements} judgements" if r.method != "sft" else "sft"
        table.add_row(f"{r.name}{star}", r.base_model, r.route, r.dataset_hash or "—", trained,
                      "yes" if r.verified else "no", r.created[:16].replace("T", " "))
    console.print(table)
    console.print("★ = promoted. Notes and scores: `mtw models --json`; compare two versions with "
                  "`mtw models --compare A B`.")
