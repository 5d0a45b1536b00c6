"""`mtw ui` off loopback: no start without a password; `--set-password` stores it hashed, readable by the owner."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

from typer.testing import CliRunner

from assistant.access import check_password
from assistant.cli import app

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_off_loopback_without_a_password_the_wizard_does_not_start(mtw_home: Path):
    res = runner.invoke(app, ["ui", "--host", "0.0.0.0", "--port", str(_free_port()), "--no-browser"])
    assert res.exit_code == 2
    said = " ".join(res.output.split())
    assert "needs a password first" in said
    assert "mtw ui --set-password" in said


def test_set_password_stores_a_salted_hash_for_the_owner_only(mtw_home: Path):
    res = runner.invoke(app, ["ui", "--set-password", "--user", "ana"], input="correct horse\ncorrect horse\n")
    assert res.exit_code == 0, res.output
    users = mtw_home / "ui_users.json"
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert "correct horse" not in users.read_text()
    assert check_password(mtw_home, "ana", "correct horse")
    assert not check_password(mtw_home, "ana", "wrong")
    assert not check_password(mtw_home, "bob", "correct horse")
