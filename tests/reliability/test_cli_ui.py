"""`mtw ui` with passwords: no start without one, `--set-password` stores a long one hashed, guessing is limited."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

from typer.testing import CliRunner

from assistant import passwords
from assistant.passwords import Throttle, check_password, set_password, sign_in
from mtw.cli import app

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


def test_a_one_character_password_is_refused_in_a_sentence(mtw_home: Path):
    res = runner.invoke(app, ["ui", "--set-password", "--user", "ana"], input="x\nx\n")
    assert res.exit_code == 2
    said = " ".join(res.output.split())
    assert "needs at least 8 characters (this one has 1)" in said
    assert not (mtw_home / "ui_users.json").exists()
    ok = runner.invoke(app, ["ui", "--set-password", "--user", "ana"], input="eight ch\neight ch\n")
    assert ok.exit_code == 0, ok.output


def test_a_wrong_user_name_costs_the_same_work_as_a_wrong_password(mtw_home: Path, monkeypatch):
    set_password(mtw_home, "ana", "correct horse")
    hashed: list[bytes] = []
    real = passwords._hash_password
    monkeypatch.setattr(passwords, "_hash_password", lambda pw, salt: hashed.append(salt) or real(pw, salt))
    assert sign_in(mtw_home, "ana", "wrong horse") is None
    assert sign_in(mtw_home, "nobody", "wrong horse") is None
    # one scrypt each: a name that does not exist is not answered sooner (no user enumeration by timing)
    assert len(hashed) == 2
    assert sign_in(mtw_home, "ana", "correct horse")


def test_failed_sign_ins_count_per_user_and_per_address_over_a_window():
    now = [0.0]
    throttle = Throttle(per_user=2, per_client=3, window_s=60, clock=lambda: now[0])
    throttle.failed("ana", "10.0.0.5")
    now[0] = 10
    throttle.failed("ana", "10.0.0.5")
    assert throttle.wait_s("ana", "10.0.0.9") == 50  # ana's name is locked from anywhere
    assert throttle.wait_s("bob", "10.0.0.5") == 0  # the address has one failure left
    throttle.failed("bob", "10.0.0.5")
    assert throttle.wait_s("carl", "10.0.0.5") == 50  # three from one address: every name waits
    now[0] = 61
    assert throttle.wait_s("ana", "10.0.0.9") == 0  # the first failure no longer counts
    assert throttle.wait_s("carl", "10.0.0.5") == 0
    throttle.succeeded("ana")
    assert throttle.wait_s("ana", "10.0.0.9") == 0
