"""The `mtw` command line: the wizard (`mtw ui`) and the engine's commands (tools/cli.py)."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import typer
from rich.console import Console

from assistant.uploads import DEFAULT_MAX_UPLOAD_MB
from tools.cli import new_app, register, run
from tools.settings import get_settings

app = new_app()
console = Console()


@app.command()
def ui(
    host: str = typer.Option(None, help="Address to bind (default 127.0.0.1, or MTW_HOST). Anything but loopback "
                                        "needs a password."),
    port: int = typer.Option(None, help="Port to listen on (default 8000, or MTW_PORT)."),
    max_upload_mb: int = typer.Option(DEFAULT_MAX_UPLOAD_MB, help="Largest file the chat accepts, in MB."),
    set_password: bool = typer.Option(False, "--set-password", help="Set a sign-in password (for --host other "
                                                                    "than 127.0.0.1, or --password), then exit."),
    user: str = typer.Option("owner", help="The user name --set-password sets the password for."),
    password: bool = typer.Option(False, "--password", help="Sign in with a user name and password even on "
                                                            "127.0.0.1 (several people sharing this computer)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Print the link but do not open a browser."),
) -> None:
    """Start the chat wizard in your browser."""
    from assistant.access import Policy, is_loopback, ui_token
    from assistant.passwords import has_passwords
    from assistant.server import PortInUse, bind, serve

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    home = settings.home
    if set_password:
        _store_password(home, user, f"New password for {user}")
        console.print(f"Password for [bold]{user}[/] saved (hashed) in {home}; sessions signed in with an older "
                      f"one have ended. Start the wizard with `mtw ui --host "
                      f"{host if not is_loopback(host) else '0.0.0.0'}` (or `mtw ui --password` on this computer).")
        return
    try:
        sock = bind(host, port)
    except PortInUse:
        console.print(f"[red]Port {port} on {host} is already in use[/] — the wizard may already be running: "
                      f"open http://{host}:{port}, or start another one with `mtw ui --port {port + 1}`.")
        raise typer.Exit(2) from None
    except OSError as exc:
        console.print(f"[red]Cannot listen on {host}:{port}[/] ({exc.strerror}). Use an address of this "
                      "computer, e.g. `mtw ui --host 127.0.0.1`.")
        raise typer.Exit(2) from None
    token: str | None = None
    if is_loopback(host) and not password:
        try:
            token = ui_token(home)
        except OSError as exc:
            token = secrets.token_urlsafe(32)
            console.print(f"[yellow]Cannot save the sign-in token in {home} ({exc.strerror}):[/] this link works "
                          "until the wizard stops.")
        url = f"http://{host}:{port}/?token={token}"
        console.print(f"Model Training Wizard on [bold]{url}[/]", soft_wrap=True)
        console.print("Only this computer can reach it, and only with this link (the token signs you in) — "
                      "press Ctrl-C to stop.")
    else:
        reach = "this computer" if is_loopback(host) else "other computers"
        if not has_passwords(home):
            if not sys.stdin.isatty():
                console.print(f"[red]Listening on {host} lets {reach} reach the wizard, so it needs a "
                              "password first:[/] run `mtw ui --set-password`, then start it again.")
                raise typer.Exit(2)
            _store_password(home, user, f"The wizard is reachable from {reach} on {host}. Choose a password "
                                        f"for {user}")
        url = f"http://{host}:{port}/"
        who = "everyone on this computer" if is_loopback(host) else f"anyone who can reach {host}:{port} (your network)"
        console.print(f"Model Training Wizard on [bold]{url}[/]\n[yellow]The sign-in page is open to {who};[/] only "
                      "users with a password (`mtw ui --set-password --user NAME`) get in, each to their own "
                      "conversations — press Ctrl-C to stop.")
    sys.stdout.flush()
    if not no_browser and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform != "linux"):
        import webbrowser

        webbrowser.open(url)
    serve(sock, Policy(host=host, port=port, token=token, max_upload_bytes=max_upload_mb * 2**20, home=home), home)


def _store_password(home: Path, user: str, prompt: str) -> None:
    """Ask for a password twice and keep it; one that is too short is refused in a sentence (exit 2)."""
    from assistant.passwords import set_password as store_password
    from tools.errors import MTWError

    try:
        store_password(home, user, typer.prompt(prompt, hide_input=True, confirmation_prompt=True))
    except MTWError as exc:
        console.print(f"[red]{exc.message}[/] {exc.fix}")
        raise typer.Exit(2) from None



register(app)


def main() -> None:
    """Console-script entry point: everything `mtw` makes is readable by you only (folders 0700, files 0600)."""
    run(app)


if __name__ == "__main__":
    main()
