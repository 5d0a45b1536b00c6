from pathlib import Path

import pytest

from tools.errors import UsageError
from tools.train.config import build_config, load_run_config, save_run_config


def test_preset_then_sets_override():
    cfg = build_config("tiny-random", "d.jsonl", preset="communications", sets=["learning_rate=1e-4", "lora_r=8"])
    assert (cfg.learning_rate, cfg.batch_size, cfg.context, cfg.lora_r) == (1e-4, 8, 2048, 8)
    assert build_config("m", "d", sets=["lora_targets=q_proj,v_proj"]).lora_targets == ["q_proj", "v_proj"]


def test_every_problem_is_reported_in_plain_words():
    with pytest.raises(UsageError) as err:
        build_config("m", "d", preset="docs", sets=["batch_size=0", "learning_rate=5", "val_share=2", "nonsense"])
    text = err.value.message
    assert "batch size 0 — use 1 or more" in text
    assert "learning rate 5" in text
    assert "validation share 2" in text
    assert "preset 'docs'" in text
    assert "'nonsense' is not key=value" in text


def test_unknown_and_mistyped_settings_name_the_field():
    with pytest.raises(UsageError) as err:
        build_config("m", "d", sets=["learning_rat=1e-4", "batch_size=four"])
    assert "did you mean 'learning_rate'" in err.value.message
    assert "batch_size = 'four'" in err.value.message


def test_run_config_round_trips_with_reproduce_command(tmp_path: Path):
    cfg = build_config("tiny-random", "ex.jsonl", preset="documents", sets=["lora_r=4", "packing=false"], max_steps=7)
    save_run_config(tmp_path, cfg)
    first = (tmp_path / "config.yaml").read_text().splitlines()[0]
    assert first.startswith("# mtw train --data ex.jsonl --model tiny-random --out ")
    assert "--preset documents" in first
    assert "--max-steps 7" in first
    assert "--set lora_r=4" in first
    assert "--set packing=false" in first
    assert load_run_config(tmp_path) == cfg
