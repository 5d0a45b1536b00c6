"""Crashes: `mtw train` killed at any moment, a damaged newest checkpoint, a disk that fills up — every case
resumes to a valid adapter or says why in one sentence."""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from tests.unit.train.conftest import FEATURES, write_chat
from tools.jobs import start_detached
from tools.train import checkpoint as ckpt
from tools.train.config import build_config
from tools.train.events import read_events
from tools.train.sft import train

pytestmark = pytest.mark.reliability

STEPS = 24
SETS = ["learning_rate=3e-3", "batch_size=2", "val_share=0", "checkpoint_every=2", "lora_dropout=0.0"]


def _strict(run: Path) -> list[dict]:
    def no_constants(name: str) -> None:
        raise AssertionError(f"bare {name} in {run / 'events.jsonl'}")

    return [json.loads(line, parse_constant=no_constants)
            for line in (run / "events.jsonl").read_text().splitlines() if line.endswith("}")]


def _adapter(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "adapter" / "adapter_model.safetensors")


def _wait(run: Path, seen: int, predicate: Callable[[dict], bool], pid: int, timeout: float = 180) -> bool:
    """Until a new event matches (True) or the process ends on its own (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = read_events(run)[seen:]
        if any(predicate(e) for e in new):
            return True
        if any(e["type"] in ("done", "failed", "stopped") for e in new) or not _running(pid):
            return False
        time.sleep(0.005)
    raise AssertionError(f"nothing happened in {run}: {read_events(run)[-3:]}")


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _mid_checkpoint(run: Path, seen: int, pid: int) -> bool:
    """Kill while a checkpoint is being written if the poll catches one, else right after the next checkpoint."""
    root = run / "checkpoints"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if root.is_dir() and any(p.name.startswith(".tmp-") for p in os.scandir(root)):
            return True
        if any(e["type"] == "checkpoint" for e in read_events(run)[seen:]):
            return True
        if not _running(pid):
            return False
        time.sleep(0.0005)
    raise AssertionError("no checkpoint was written")


MOMENTS: list[tuple[str, Callable[[Path, int, int], bool]]] = [
    ("after the first step", lambda r, s, p: _wait(r, s, lambda e: e["type"] == "step", p)),
    ("while starting up", lambda r, s, p: True),
    ("right after the start event", lambda r, s, p: _wait(r, s, lambda e: e["type"] == "start", p)),
    ("mid-checkpoint", _mid_checkpoint),
    ("right after a checkpoint", lambda r, s, p: _wait(r, s, lambda e: e["type"] == "checkpoint", p)),
    ("between checkpoints", lambda r, s, p: _wait(r, s, lambda e: e["type"] == "step" and e["step"] % 2 == 1, p)),
    ("mid-checkpoint again", _mid_checkpoint),
    ("two steps in", lambda r, s, p: _wait(r, s, lambda e: e["type"] == "step", p)
     and _wait(r, len(read_events(r)), lambda e: e["type"] == "step", p)),
    ("while starting up again", lambda r, s, p: True),
    ("at the last step", lambda r, s, p: _wait(r, s, lambda e: e["type"] == "step" and e["step"] >= STEPS - 1, p)),
]


# `make test` kills at the three moments that matter most (the start, a checkpoint being written, the end);
# `make test-all` at all ten
THREE = [MOMENTS[2], MOMENTS[3], MOMENTS[9]]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("moments", [pytest.param(THREE, id="three"),
                                     pytest.param(MOMENTS, id="ten", marks=pytest.mark.slow)])
def test_sigkill_at_any_moment_then_resume_gives_the_uninterrupted_adapter(
        tmp_path: Path, moments: list[tuple[str, Callable[[Path, int, int], bool]]]):
    data = write_chat(tmp_path / "stories.jsonl", FEATURES)
    run = tmp_path / "run"
    killed = 0
    for i, (name, moment) in enumerate(moments):
        seen = len(read_events(run)) if run.exists() else 0
        if any(e["type"] == "done" for e in read_events(run)):
            break  # the run got to its end before this moment came
        record = start_detached(str(data), "tiny-random", run, sets=SETS, max_steps=STEPS, resume=i > 0)
        assert record.pid is not None
        if moment(run, seen, record.pid):
            os.kill(record.pid, signal.SIGKILL)
            killed += 1
        while _running(record.pid):
            time.sleep(0.05)
        # whatever the moment, the folder is resumable: the newest checkpoint (if any) is sound or skipped
        path, _ = ckpt.pick_checkpoint(run)
        assert path is None or ckpt.damage(path) is None, name
        _strict(run)
    assert killed >= len(moments) - len(moments) // 5  # the run is long enough for (almost) every moment
    if not any(e["type"] == "done" for e in read_events(run)):
        final = train(build_config("tiny-random", str(data), sets=SETS, max_steps=STEPS), run, resume=True)
        assert final["type"] == "done", final

    reference = train(build_config("tiny-random", str(data), sets=SETS, max_steps=STEPS), tmp_path / "ref")
    done = _strict(run)[-1]
    assert done["type"] == "done"
    assert done["metrics"]["steps"] == STEPS
    # metrics over the whole run, not only the part after the last resume
    assert done["metrics"]["tokens"] == reference["metrics"]["tokens"]
    assert done["metrics"]["train_loss"] == pytest.approx(reference["metrics"]["train_loss"], abs=1e-4)
    ours, theirs = _adapter(run), _adapter(tmp_path / "ref")
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        torch.testing.assert_close(ours[key], value, atol=1e-4, rtol=1e-3)


def _stopped_run(tmp_path: Path, stop_at: int) -> tuple[Path, Path]:
    """A run that crashed right after its checkpoint at STOP_AT (max_steps: the data order stays the same)."""
    data = write_chat(tmp_path / "stories.jsonl", FEATURES)
    run = tmp_path / "run"
    first = train(build_config("tiny-random", str(data), sets=SETS, max_steps=stop_at), run)
    assert first["type"] == "done"
    # turn the finished short run into an interrupted long one: the same checkpoints, no `done`, more steps
    events = [e for e in read_events(run) if e["type"] != "done"]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    config = (run / "config.yaml").read_text().replace(f"max_steps: {stop_at}", f"max_steps: {STEPS}")
    (run / "config.yaml").write_text(config)
    return run, data


@pytest.mark.parametrize("damage", ["truncated", "zeroed"])
def test_a_damaged_newest_checkpoint_resumes_from_the_one_before_and_says_so(tmp_path: Path, damage: str):
    run, _ = _stopped_run(tmp_path, 6)
    state = run / "checkpoints" / "step-000006" / "state.pt"
    size = state.stat().st_size
    state.write_bytes(state.read_bytes()[: size // 2] if damage == "truncated" else b"\0" * size)
    final = train(build_config("tiny-random", "unused", sets=SETS), run, resume=True)
    assert final["type"] == "done"
    assert final["metrics"]["steps"] == STEPS
    start = [e for e in _strict(run) if e["type"] == "start"][-1]
    assert start["resumed_from"] == 4
    assert "step 6" in start["resume_note"]
    assert "step 4" in start["resume_note"]
    assert (run / "adapter" / "adapter_model.safetensors").is_file()


def test_resuming_right_at_the_last_step_reports_real_metrics(tmp_path: Path):
    run, _ = _stopped_run(tmp_path, STEPS)
    final = train(build_config("tiny-random", "unused", sets=SETS), run, resume=True)
    assert final["type"] == "done"
    metrics = final["metrics"]
    assert metrics["train_loss"] is not None
    assert metrics["train_loss"] > 0
    assert metrics["tokens"] > 0
    _strict(run)


def test_a_disk_that_fills_up_mid_run_is_one_sentence_and_the_run_resumes(tmp_path: Path, monkeypatch):
    data = write_chat(tmp_path / "stories.jsonl", FEATURES)
    run = tmp_path / "run"
    real = ckpt._write_synced
    writes = {"n": 0}

    def filling(path: Path, payload: bytes) -> None:  # test double: the third checkpoint finds the disk full
        writes["n"] += 1
        if writes["n"] >= 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, payload)

    monkeypatch.setattr(ckpt, "_write_synced", filling)
    failed = train(build_config("tiny-random", str(data), sets=SETS, max_steps=STEPS), run)
    assert failed["type"] == "failed"
    assert failed["code"] == "disk_full"
    assert "is full" in failed["message"]
    assert "--resume" in failed["fix"]
    assert "pos" not in failed["message"]
    assert ckpt.pick_checkpoint(run) == (run / "checkpoints" / "step-000004", None)

    monkeypatch.setattr(ckpt, "_write_synced", real)  # space freed
    final = train(build_config("tiny-random", str(data), sets=SETS), run, resume=True)
    assert final["type"] == "done"
    assert final["metrics"]["steps"] == STEPS
    _strict(run)
