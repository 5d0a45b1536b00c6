"""Process hygiene: wizards on one machine keep to their own files, and `mtw ui` restarts at once after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.reliability.conftest import cookie_header, signed_in_client, socket_session

pytestmark = pytest.mark.reliability


def test_a_second_wizard_stopping_leaves_the_first_one_working(launch):
    first = launch()
    second = launch(home=first.home)
    roots = sorted(p.name for p in (first.home / "ui").iterdir())
    assert roots == sorted([str(first.proc.pid), str(second.proc.pid)])  # one chainlit folder each
    second.stop()
    assert (first.home / "ui" / str(first.proc.pid) / ".files").is_dir()
    client = signed_in_client(first)
    ws, session = socket_session(first, cookie_header(client))
    try:
        reply = client.post("/project/file", params={"session_id": session},
                            files={"file": ("a.jsonl", b'{"text": "still here"}\n', "application/json")})
        assert reply.status_code == 200, reply.text
    finally:
        ws.close()  # type: ignore[attr-defined]


def test_mtw_ui_starts_again_at_once_on_the_same_port_after_a_crash(launch):
    first = launch()
    client = signed_in_client(first)  # open connections, as a browser holds them
    assert client.get("/project/settings").status_code == 200
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    again = launch(home=first.home, port=first.port)
    assert signed_in_client(again).get("/project/settings").status_code == 200
    # the stale folder of the killed wizard is cleared by the next start
    assert not (first.home / "ui" / str(first.proc.pid)).exists()

    busy = subprocess.run([sys.executable, "-m", "mtw.cli", "ui", "--port", str(first.port), "--no-browser"],
                          env={**os.environ, "MTW_HOME": str(first.home)}, capture_output=True, text=True,
                          timeout=120)
    assert busy.returncode == 2
    assert "already in use" in busy.stdout
