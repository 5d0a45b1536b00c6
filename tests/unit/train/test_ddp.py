from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app
from tools.train.events import read_events
from tools.train.modeling import load_tuned


@pytest.mark.slow
def test_two_cpu_processes_train_one_adapter(tmp_path: Path, chat_file: Path):
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--data", str(chat_file), "--model", "tiny-random", "--out", str(run),
                                      "--nproc", "2", "--set", "batch_size=2", "--set", "val_share=0.2",
                                      "--set", "eval_every=2", "--max-steps", "4"])
    assert result.exit_code == 0, result.output
    events = read_events(run)
    start = events[0]
    assert start["type"] == "start" and start["world_size"] == 2
    # only the main process narrates: one event per step, not two
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2, 3, 4]
    assert events[-1]["type"] == "done" and events[-1]["metrics"]["steps"] == 4
    assert (run / "config.yaml").read_text().startswith("# mtw train")
    model, _, cfg = load_tuned(run)
    assert cfg.max_steps == 4 and any("lora_" in n for n, _ in model.named_parameters())
