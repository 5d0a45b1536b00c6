"""Storage that survives: checksummed checkpoints with fallback, full disks, strict events, schema migrations."""

from __future__ import annotations

import errno
import json
import sqlite3
import threading
from pathlib import Path

import pytest
import torch

from tools.db import WORKSPACE, connect, migrate, schema_version
from tools.errors import MTWError
from tools.train import checkpoint as ckpt
from tools.train.events import EventWriter, read_events


def _parts() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


def _save(run: Path, step: int) -> Path:
    model, opt, sched = _parts()
    with torch.no_grad():
        model.weight.fill_(step)
    return ckpt.save_checkpoint(run, step, model, opt, sched, {"dataset_version": "v1", "tokens": step * 10})


@pytest.mark.parametrize("damage", ["truncate", "zero", "delete"])
def test_a_damaged_newest_checkpoint_is_skipped_for_the_one_before_and_said(tmp_path: Path, damage: str):
    _save(tmp_path, 2)
    newest = _save(tmp_path, 4)
    state = newest / "state.pt"
    if damage == "truncate":
        state.write_bytes(state.read_bytes()[:100])
    elif damage == "zero":
        state.write_bytes(b"\0" * state.stat().st_size)
    else:
        state.unlink()
    path, note = ckpt.pick_checkpoint(tmp_path)
    assert path is not None
    assert path.name == "step-000002"
    assert note is not None
    assert "step 4" in note
    assert "resumes from step 2" in note
    model, opt, sched = _parts()
    state = ckpt.restore(path, model, opt, sched, "v1", "data.jsonl")
    assert state["step"] == 2
    assert float(model.weight[0, 0].detach()) == 2.0


def test_a_sound_newest_checkpoint_is_used_without_a_note(tmp_path: Path):
    _save(tmp_path, 2)
    _save(tmp_path, 4)
    path, note = ckpt.pick_checkpoint(tmp_path)
    assert path is not None
    assert path.name == "step-000004"
    assert note is None
    assert json.loads((path / "checksum.json").read_text())["bytes"] == (path / "state.pt").stat().st_size


def test_when_every_checkpoint_is_damaged_training_restarts_from_step_0_and_says_so(tmp_path: Path):
    (_save(tmp_path, 2) / "state.pt").write_bytes(b"junk")
    path, note = ckpt.pick_checkpoint(tmp_path)
    assert path is None
    assert note is not None
    assert "starts again from step 0" in note


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "is full"), (errno.EROFS, "cannot be written")])
def test_a_full_or_read_only_disk_is_one_sentence_and_earlier_checkpoints_stay(tmp_path: Path, monkeypatch,
                                                                            code: int, words: str):
    _save(tmp_path, 2)

    def failing(path: Path, data: bytes) -> None:  # test double: the disk refuses the write
        raise OSError(code, "simulated")

    monkeypatch.setattr(ckpt, "_write_synced", failing)
    with pytest.raises(MTWError) as caught:
        _save(tmp_path, 4)
    assert words in caught.value.message
    assert "--resume" in caught.value.fix
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-000002"]
    assert ckpt.pick_checkpoint(tmp_path) == (tmp_path / "checkpoints" / "step-000002", None)


def test_events_are_strict_json_even_for_a_nan_loss(tmp_path: Path):
    EventWriter(tmp_path).emit("step", step=3, loss=float("nan"), metrics={"train_loss": float("inf")})

    def no_constants(name: str) -> None:
        raise AssertionError(f"bare {name} in events.jsonl")

    for line in (tmp_path / "events.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=no_constants)
    assert read_events(tmp_path)[0]["loss"] is None


def test_an_old_workspace_is_migrated_in_place_and_keeps_its_rows(tmp_path: Path):
    path = tmp_path / "mtw.db"
    with sqlite3.connect(path) as old:  # a workspace from before migrations: tables, no schema_version
        old.execute(WORKSPACE[0][0])
        old.execute("INSERT INTO runs (id, run_dir, status) VALUES ('r1', '/runs/a', 'done')")
    conn = connect(path)
    assert schema_version(conn) == len(WORKSPACE)
    assert conn.execute("SELECT status FROM runs WHERE id='r1'").fetchone()[0] == "done"
    assert migrate(conn, WORKSPACE) == len(WORKSPACE)  # a second time changes nothing
    assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == len(WORKSPACE)


def test_a_new_migration_runs_once_even_when_two_processes_open_the_workspace_together(tmp_path: Path):
    path = tmp_path / "mtw.db"
    steps = [*WORKSPACE, ("ALTER TABLE runs ADD COLUMN note TEXT",)]
    errors: list[BaseException] = []

    def open_and_migrate() -> None:
        try:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            migrate(conn, steps)
            conn.close()
        except BaseException as exc:  # collected: a duplicate ALTER would fail here
            errors.append(exc)

    threads = [threading.Thread(target=open_and_migrate) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = sqlite3.connect(path)
    assert schema_version(conn) == len(steps)
    assert "note" in [r[1] for r in conn.execute("PRAGMA table_info(runs)")]


def test_the_chat_database_is_versioned_and_first_logins_at_once_create_one_user():
    from assistant.chat_store import MIGRATIONS, chat_db_path, ensure_chat_db
    from assistant.server import ensure_user

    ensure_chat_db()
    threads = [threading.Thread(target=ensure_user, args=("local",)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db = sqlite3.connect(chat_db_path())
    assert schema_version(db) == len(MIGRATIONS)
    assert db.execute("SELECT COUNT(*) FROM users WHERE identifier='local'").fetchone()[0] == 1
