"""The `mtw` command line: the wizard, the doctor, and the engine's commands (thin edge over tools/)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

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

app = typer.Typer(
    help="Model Training Wizard: fine-tune a model on your own examples and run it in Ollama.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
console = Console()

APP_FILE = Path(__file__).with_name("app.py")
UI_ROOT = Path(__file__).with_name("ui")

_MARK = {"ok": "[green]✔ ok[/]", "warning": "[yellow]! warning[/]", "problem": "[red]✘ problem[/]"}


@app.command()
def ui(
    host: str = typer.Option(None, help="Address to bind (default 127.0.0.1, or MTW_HOST)."),
    port: int = typer.Option(None, help="Port to listen on (default 8000, or MTW_PORT)."),
) -> None:
    """Start the chat wizard in your browser."""
    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            console.print(f"[red]Port {port} on {host} is already in use[/] — the wizard may already be running: "
                          f"open http://{host}:{port}, or start another one with `mtw ui --port {port + 1}`.")
            raise typer.Exit(2) from None
    env = dict(os.environ, CHAINLIT_APP_ROOT=str(UI_ROOT))
    console.print(f"Model Training Wizard on [bold]http://{host}:{port}[/] — press Ctrl-C to stop.")
    cmd = [sys.executable, "-m", "chainlit", "run", str(APP_FILE), "-h", "--host", host, "--port", str(port)]
    sys.stdout.flush()
    # become the server process, so a stop signal reaches it directly
    os.execve(sys.executable, cmd, env)


@app.command()
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


app.command()(check)
app.command()(download)
app.command()(train)
app.command("eval")(eval_run)
app.command()(export)
app.command()(models)
app.command()(explain)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
