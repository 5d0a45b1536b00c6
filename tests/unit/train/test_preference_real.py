"""Preference rounds on a real instruct model (SmolLM2-135M-Instruct, dequantized from its GGUF into a model folder):
a few DPO / KTO steps make the chosen answer likelier than the rejected one on pairs the round never saw."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.real_model import require_smollm2
from tests.unit.train.test_preference import FEATURES, unseen_pairs, write_labels, write_pairs
from tools.train.config import build_config
from tools.train.events import read_events
from tools.train.modeling import load_base, load_tuned
from tools.train.pairs import margins
from tools.train.preference import train

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct as a plain model folder (safetensors, tokenizer, chat template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = require_smollm2()
    folder = tmp_path_factory.mktemp("smollm2")
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # a dequantized GGUF model refuses save_pretrained; the same weights in a plain model save as usual
    config = model.config
    del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    plain.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("method", ["dpo", "kto"])
def test_a_few_steps_on_a_real_model_prefer_the_chosen_answer(smollm2, method, tmp_path):
    writer = write_pairs if method == "dpo" else write_labels
    data = writer(tmp_path / f"{method}.jsonl", FEATURES)
    cfg = build_config(str(smollm2), str(data), method=method, max_steps=3,
                       sets=["learning_rate=1e-4", "batch_size=4", "lora_r=8", "val_share=0", "checkpoint_every=100",
                             "context=256"])
    final = train(cfg, tmp_path / "run")
    assert final["type"] == "done", final
    losses = [e["loss"] for e in read_events(tmp_path / "run") if e["type"] == "step"]
    assert len(losses) == 3
    assert all(loss > 0 for loss in losses)
    base, tok = load_base(str(smollm2))
    tuned, _, _ = load_tuned(tmp_path / "run")
    pairs = unseen_pairs()
    before, after = margins(base, tok, pairs), margins(tuned, tok, pairs)
    assert sum(after) > sum(before), (before, after)
