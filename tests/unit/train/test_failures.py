import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import tools.train.sft as sft
from mtw.cli import app
from tools.train.events import read_events

RUNNER = CliRunner()


def invoke(*args: str):
    return RUNNER.invoke(app, ["train", *args])


def test_dataset_with_errors_fails_in_plain_words(tmp_path: Path, chat_file: Path):
    bad = tmp_path / "bad.jsonl"
    lines = chat_file.read_text().splitlines()
    lines[1] = '{"messages": [{"role": "user", "content": "hi"}'
    bad.write_text("\n".join(lines) + "\n")
    result = invoke("--data", str(bad), "--model", "tiny-random", "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert "line 2" in result.output
    assert "mtw check" in result.output
    assert "Traceback" not in result.output
    failed = read_events(tmp_path / "run")[-1]
    assert failed["type"] == "failed"
    assert failed["code"] == "dataset_errors"
    assert failed["fix"]


def test_bad_settings_are_a_usage_error_listing_each(tmp_path: Path, chat_file: Path):
    result = invoke("--data", str(chat_file), "--model", "tiny-random", "--out", str(tmp_path / "run"),
                    "--set", "batch_size=0", "--set", "epochs=-1")
    assert result.exit_code == 2
    assert "batch size 0 — use 1 or more" in result.output
    assert "epochs -1" in result.output
    assert not (tmp_path / "run").exists()


def test_unknown_model_and_missing_data_are_usage_errors(tmp_path: Path, chat_file: Path):
    result = invoke("--data", str(chat_file), "--model", "nope/nothing", "--out", str(tmp_path / "r1"))
    assert result.exit_code == 2
    assert "Unknown model 'nope/nothing'" in result.output
    assert not (tmp_path / "r1").exists()
    result = invoke("--data", str(tmp_path / "missing.jsonl"), "--model", "tiny-random", "--out", str(tmp_path / "r2"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_an_existing_run_is_not_overwritten(tmp_path: Path, chat_file: Path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "events.jsonl").write_text(json.dumps({"type": "start"}) + "\n")
    result = invoke("--data", str(chat_file), "--model", "tiny-random", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "--resume" in result.output


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_nan_loss_stops_with_a_failed_event_and_a_diagnosis(tmp_path: Path, chat_file: Path,
                                                            monkeypatch: pytest.MonkeyPatch):
    real = sft.lm_loss
    calls = {"n": 0}

    def exploding(model, batch, chunk_size=1024):
        loss, n = real(model, batch, chunk_size)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] >= 3 else loss), n

    monkeypatch.setattr(sft, "lm_loss", exploding)
    result = invoke("--data", str(chat_file), "--model", "tiny-random", "--out", str(tmp_path / "run"),
                    "--set", "batch_size=2", "--max-steps", "6")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    events = read_events(tmp_path / "run")
    failed = next(e for e in events if e["type"] == "failed")
    assert failed["code"] == "nan_loss"
    assert "learning_rate" in failed["fix"]
    codes = [e["code"] for e in events if e["type"] == "diagnosis"]
    assert "nan_loss" in codes
    assert len(codes) == len(set(codes))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_out_of_memory_becomes_advice(tmp_path: Path, chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    def oom(model, batch, chunk_size=1024):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(sft, "lm_loss", oom)
    result = invoke("--data", str(chat_file), "--model", "tiny-random", "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "ran out of memory" in result.output
    assert "batch_size=1" in result.output
    events = read_events(tmp_path / "run")
    assert any(e["type"] == "failed" and e["code"] == "oom" for e in events)
    assert any(e["type"] == "diagnosis" and e["code"] == "oom" for e in events)


def test_resuming_a_finished_run_says_so(tmp_path: Path, chat_file: Path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"model: tiny-random\ndata: {chat_file}\n")
    (run / "events.jsonl").write_text(json.dumps({"type": "done", "adapter": str(run / "adapter")}) + "\n")
    result = invoke("--out", str(run), "--resume")
    assert result.exit_code == 2
    assert "already finished" in result.output


def test_resume_without_a_run_folder_is_a_usage_error(tmp_path: Path):
    result = invoke("--out", str(tmp_path / "nothing"), "--resume")
    assert result.exit_code == 2
    assert "not a training run" in result.output


def test_an_unforeseen_error_still_ends_the_run_with_a_failed_event(tmp_path: Path, chat_file: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    def broken(model, batch, chunk_size=1024):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(sft, "lm_loss", broken)
    result = invoke("--data", str(chat_file), "--model", "tiny-random", "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert "stopped unexpectedly" in result.output
    failed = next(e for e in read_events(tmp_path / "run") if e["type"] == "failed")
    assert failed["code"] == "crash"
    assert "--resume" in failed["fix"]
    from tools.jobs import get_run

    assert get_run(tmp_path / "run").status == "failed"


def test_resume_refuses_a_dataset_that_changed(tmp_path: Path, chat_file: Path):
    import os
    import signal

    from tools.train.config import build_config
    from tools.train.sft import train

    def stop_at_step_two(ev):
        if ev["type"] == "step" and ev["step"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    cfg = build_config("tiny-random", str(chat_file), sets=["batch_size=2"], max_steps=20)
    final = train(cfg, tmp_path / "run", listener=stop_at_step_two)
    assert final["type"] == "stopped"
    assert final["step"] == 2
    assert (tmp_path / "run" / "checkpoints" / "step-000002").is_dir()
    chat_file.write_text(chat_file.read_text().replace("dark mode", "light mode"))
    result = invoke("--out", str(tmp_path / "run"), "--resume")
    assert result.exit_code == 1
    assert "Put back the file the run trained on" in result.output  # the data changed since the run started


def test_a_folder_of_the_users_own_files_is_refused_and_left_as_it_was(tmp_path: Path, chat_file: Path):
    mine = tmp_path / "mine"
    (mine / "adapter").mkdir(parents=True)
    (mine / "adapter" / "mine.bin").write_bytes(b"my weights")
    (mine / "split.json").write_text('{"mine": true}')
    before = sorted(p.relative_to(mine) for p in mine.rglob("*"))
    result = invoke("--data", str(chat_file), "--model", "tiny-random", "--out", str(mine), "--max-steps", "1")
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert f"{mine} already holds files that are not a training run (adapter, split.json)" in said
    assert f"--out {mine / 'run1'}" in said
    assert sorted(p.relative_to(mine) for p in mine.rglob("*")) == before  # nothing added, removed or replaced
    assert (mine / "adapter" / "mine.bin").read_bytes() == b"my weights"
    assert (mine / "split.json").read_text() == '{"mine": true}'
    # the normal case: a folder holding only the chat's launch log trains, and the log is kept
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "train.log").write_text("started from the chat\n")
    result = invoke("--data", str(chat_file), "--model", "tiny-random", "--out", str(fresh), "--max-steps", "1",
                    "--set", "val_share=0")
    assert result.exit_code == 0, result.output
    assert (fresh / "adapter" / "adapter_config.json").is_file()
    assert (fresh / "train.log").read_text().startswith("started from the chat")


def test_a_read_only_out_or_mtw_home_is_one_sentence_not_a_traceback(tmp_path: Path, chat_file: Path, mtw_home: Path,
                                                                    monkeypatch: pytest.MonkeyPatch):
    from tests.unit.dataset.test_cli_fix import read_only

    ro = tmp_path / "ro"
    ro.mkdir()
    read_only(monkeypatch, ro)
    result = invoke("--data", str(chat_file), "--model", "tiny-random", "--out", str(ro / "run"), "--max-steps", "1")
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "cannot be written (the folder is read-only or not yours)" in said
    assert "then run the same command again" in said
    assert "Traceback" not in said
    # MTW_HOME read-only too: its caches (check reports, speed figures) are made again next time; training goes on
    read_only(monkeypatch, mtw_home)
    result = invoke("--data", str(chat_file), "--model", "tiny-random", "--out", str(tmp_path / "run"), "--max-steps",
                    "1", "--set", "val_share=0")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
