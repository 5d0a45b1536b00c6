"""Training on a CUDA GPU (skipped by default; run with `pytest -m gpu` on a machine with one)."""

import json

import pytest
from typer.testing import CliRunner

from assistant.cli import app

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
    assert steps[-1]["loss"] < steps[0]["loss"] and steps[-1]["peak_mem_mb"] > 0
    assert events[-1]["type"] == "done" and (out / "adapter" / "adapter_model.safetensors").is_file()
