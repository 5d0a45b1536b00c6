import json
from pathlib import Path

import pytest
import torch

from tools.errors import UsageError
from tools.models.catalog import CATALOG, build_tiny_random, load_tokenizer, resolve


def test_catalog_entries_carry_what_export_needs():
    assert resolve("microsoft/Phi-4-mini-instruct").key == "phi-4-mini"
    llama = resolve("llama-3.2-1b")
    assert llama.ollama_tag == "llama3.2:1b"
    assert llama.ollama_adapter_ok
    assert llama.stop_tokens == ("<|eot_id|>",)
    qwen = resolve("Qwen/Qwen2.5-0.5B-Instruct")
    assert qwen.template_family == "chatml"
    assert not qwen.ollama_adapter_ok
    assert resolve("phi-4-mini").lora_targets == ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
    for entry in CATALOG.values():
        assert entry.stop_tokens
        assert entry.lora_targets
        assert entry.context > 0


def test_unknown_model_is_a_plain_usage_error():
    with pytest.raises(UsageError) as err:
        resolve("no-such-model")
    assert "no-such-model" in err.value.message
    assert "tiny-random" in err.value.fix


def test_local_folder_is_read_from_its_config(tmp_path: Path):
    folder = tmp_path / "my-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "max_position_embeddings": 8192}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ '<|eot_id|>' }}"}))
    entry = resolve(str(folder))
    assert (entry.architecture, entry.template_family, entry.context) == ("LlamaForCausalLM", "llama3", 8192)
    assert entry.ollama_adapter_ok
    assert entry.stop_tokens == ("<|eot_id|>",)


def test_tiny_random_tokenizer_renders_chat_with_end_of_turn():
    tok = load_tokenizer("tiny-random")
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
                                   tokenize=False)
    assert text.endswith("<|im_end|>\n")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids.count(tok.eos_token_id) == 2
    assert tok.pad_token_id is not None


def test_tiny_random_is_deterministic_and_matches_its_tokenizer():
    a, b = build_tiny_random(seed=3), build_tiny_random(seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.lm_head.weight, build_tiny_random(seed=4).lm_head.weight)
    tok = load_tokenizer("tiny-random")
    assert a.config.vocab_size == len(tok)
    assert a.config.eos_token_id == tok.eos_token_id


def test_every_model_the_estimate_plans_for_has_its_sizes_in_the_catalog(tmp_path: Path):
    from tools.models.catalog import CATALOG, model_shape

    for key, entry in CATALOG.items():
        shape = model_shape(key)
        assert shape == entry.shape
        assert shape.params_b == entry.params_b
    assert model_shape("minilm").hidden == 384
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 512, "num_hidden_layers": 10,
         "vocab_size": 32000, "intermediate_size": 1536}))
    shape = model_shape(str(folder))
    assert (shape.hidden, shape.layers, shape.vocab, shape.intermediate) == (512, 10, 32000, 1536)
    assert 0.04 < shape.params_b < 0.07  # the ~50M shape


def test_sizes_are_written_one_way():
    from tools.units import human_bytes, human_duration, human_mb

    assert human_bytes(7.7e9) == "7.7 GB"
    assert human_mb(1024) == human_bytes(2**30)
    assert [human_duration(s) for s in (1, 40, 12 * 60, 2.5 * 3600)] == [
        "about 1 second", "about 40 seconds", "about 12 minutes", "about 2.5 hours"]
