"""Another account on the machine reads nothing: every folder under MTW_HOME is 0700 and every file 0600."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT
from tests.reliability.chat import Chat, plain_interview
from tests.reliability.conftest import signed_in_client
from tests.reliability.test_uploads import STORIES

pytestmark = pytest.mark.reliability


def _open_to_others(home: Path) -> list[str]:
    """Everything under HOME (and HOME itself) that is not owner-only, with its mode."""
    loose = []
    for path in [home, *home.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode != (0o700 if path.is_dir() else 0o600):
            loose.append(f"{path.relative_to(home.parent)} {mode:o}")
    return loose


async def test_after_a_chat_with_an_upload_and_a_training_run_nothing_in_mtw_home_is_readable_by_others(launch,
                                                                                                          tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)  # as an older version left it, with a database anyone could read
    (home / "mtw.db").touch(mode=0o644)
    (home / "mtw.db").chmod(0o644)
    w = launch(home=home)
    chat = await Chat(w.url, dict(signed_in_client(w).cookies)).open()
    try:
        await plain_interview(chat)
        await chat.click("Looks right")
        await chat.click("Upload a file of examples")
        await chat.wait_text("Attach your examples file")
        ref = await chat.upload("stories.jsonl", STORIES)
        await chat.say("", files=[ref])
        await chat.wait_text("**12 examples**")
        [version] = home.glob("projects/*/dataset/versions/*.jsonl")
        run = version.parents[2] / "runs" / "r1"
        trained = subprocess.run([sys.executable, "-m", "mtw.cli", "train", "--data", str(version), "--model",
                                  "tiny-random", "--out", str(run), "--max-steps", "1", "--set", "val_share=0"],
                                 cwd=ROOT, env={**os.environ, "MTW_HOME": str(home)}, capture_output=True, text=True,
                                 timeout=300)
        assert trained.returncode == 0, trained.stdout + trained.stderr
        # what the run and the chat left behind, while the chat is still open (chainlit's scratch files too)
        assert (run / "adapter" / "adapter_model.safetensors").is_file()
        assert list((home / "ui").glob("*/.files/*/*"))
        assert _open_to_others(home) == []
        # the owner still reads all of it: the conversation is there
        with sqlite3.connect(home / "chat.db") as db:
            assert db.execute("SELECT count(*) FROM steps").fetchone()[0] > 0
    finally:
        await chat.close()


def test_only_a_workspace_of_ours_is_closed_never_a_shared_folder_it_points_at(tmp_path):
    from tools.fileio import private_home

    shared = tmp_path / "shared"  # MTW_HOME=/tmp, say: sticky and open to all
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "mtw.db").touch()
    private_home(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    plain = tmp_path / "plain"  # someone's folder with no workspace in it
    plain.mkdir()
    plain.chmod(0o755)
    private_home(plain)
    assert stat.S_IMODE(plain.stat().st_mode) == 0o755
    old = tmp_path / "old"  # a workspace an older version left open
    old.mkdir()
    old.chmod(0o755)
    (old / "chat.db").touch()
    (old / "chat.db").chmod(0o644)
    private_home(old)
    assert stat.S_IMODE(old.stat().st_mode) == 0o700
    assert stat.S_IMODE((old / "chat.db").stat().st_mode) == 0o600
    fresh = tmp_path / "fresh" / "home"
    private_home(fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
