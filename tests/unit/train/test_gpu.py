"""Training on a CUDA GPU (skipped by default; run with `pytest -m gpu` on a machine with one)."""

import json

import pytest
from typer.testing import CliRunner

from mtw.cli import app

pytestmark = pytest.mark.gpu


def test_tiny_random_trains_on_the_gpu_in_bf16_and_the_loss_falls(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--data", "examples/pm_dataset.jsonl", "--model", "tiny-random",
                                   "--out", str(out), "--max-steps", "30", "--set", "learning_rate=3e-3"])
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    start = next(e for e in events if e["type"] == "start")
    steps = [e for e in events if e["type"] == "step"]
    assert "cuda" in json.dumps(start)
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert steps[-1]["peak_mem_mb"] > 0
    assert events[-1]["type"] == "done"
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_the_gpu_speed_settings_train_the_same_as_the_plain_loop(tmp_path):
    """Compiled layers, rows rounded to 512, bf16 autocast, fused AdamW and per-step checkpointing (forced by a
    tiny budget) against the same run with all of them off: the losses agree to bf16 precision."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    losses = {}
    for name, sets in {"plain": ["compile=false", "row_multiple=0", "gradient_checkpointing=false"],
                       "fast": ["compile=true", "row_multiple=512", "memory_budget_gb=0.001"]}.items():
        out = tmp_path / name
        args = ["train", "--data", "examples/pm_dataset.jsonl", "--model", "tiny-random", "--out", str(out),
                "--max-steps", "12", "--set", "learning_rate=3e-3", "--set", "lora_dropout=0"]
        res = CliRunner().invoke(app, args + [x for s in sets for x in ("--set", s)])
        assert res.exit_code == 0, res.output
        events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
        start = next(e for e in events if e["type"] == "start")
        steps = [e for e in events if e["type"] == "step"]
        if name == "fast":
            assert start["speed"]["compile"]
            assert start["speed"]["row_multiple"] == 512
            assert start["speed"]["fused_adamw"]
            assert start["speed"]["autocast"]
            assert all(s.get("checkpointed_layers") == 2 for s in steps)
        losses[name] = [s["loss"] for s in steps]
    assert losses["fast"] == pytest.approx(losses["plain"], rel=0.03)
