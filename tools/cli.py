"""The engine's commands (`check`, `download`, `train`, `eval`, `export`, `models`, `explain`, `doctor`) as one
command line: what `mtw` offers besides the wizard, and what a background training run is started with
(`python -m tools.cli train …`), so the engine never needs the chat to run."""

from __future__ import annotations

import contextlib
import json

import typer
from rich.console import Console
from rich.table import Table

from tools.dataset.cli import check
from tools.download_cli import download
from tools.evaluate.cli import eval_run
from tools.export.cli import export, models
from tools.settings import get_settings
from tools.train.cli import train
from tools.troubleshoot.cli import explain

HELP = "Model Training Wizard: fine-tune a model on your own examples and run it in Ollama."

console = Console()

_MARK = {"ok": "[green]✔ ok[/]", "warning": "[yellow]! warning[/]", "problem": "[red]✘ problem[/]"}


def doctor(as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON.")) -> None:
    """Check this machine: Ollama, models, memory, disk, GPU."""
    from tools.doctor import run_checks

    checks = run_checks(get_settings())
    if as_json:
        typer.echo(json.dumps({"ok": all(c.status != "problem" for c in checks),
                               "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        table = Table(box=None, show_header=False, padding=(0, 1))
        for c in checks:
            table.add_row(_MARK[c.status], f"[bold]{c.name}[/]", c.detail + (f"\n[dim]→ {c.fix}[/]" if c.fix else ""))
        console.print(table)
    raise typer.Exit(1 if any(c.status == "problem" for c in checks) else 0)



def register(app: typer.Typer) -> None:
    """Add the engine's commands to `app`, in the order `mtw --help` lists them."""
    app.command()(doctor)
    app.command()(check)
    app.command()(download)
    app.command()(train)
    app.command("eval")(eval_run)
    app.command()(export)
    app.command()(models)
    app.command()(explain)


def new_app() -> typer.Typer:
    """The `mtw` command line without its commands."""
    return typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, rich_markup_mode="rich")


app = new_app()
register(app)


def run(command_line: typer.Typer) -> None:
    """Run a command line: everything it makes is readable by you only (folders 0700, files 0600)."""
    from tools.fileio import private_home, private_process

    private_process()
    # a read-only or foreign MTW_HOME: the command that needs it says so in its own words
    with contextlib.suppress(OSError):
        private_home(get_settings().home)
    command_line()


def main() -> None:
    """`python -m tools.cli COMMAND …`: the engine's commands on their own (how a background run is started)."""
    run(app)


if __name__ == "__main__":
    main()
