"""Bases from a GGUF file and from the user's Ollama: read from the file's own metadata, trained on its weights,
and recorded so evaluation and export use exactly those weights (SmolLM2-135M-Instruct, a real model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.fakes.ollama_double import OllamaDouble
from tests.fakes.real_model import SMOLLM2_TAG, require_smollm2
from tools.errors import UsageError


@pytest.fixture
def gguf() -> Path:
    return require_smollm2()


@pytest.fixture
def holding(ollama: OllamaDouble, gguf: Path) -> OllamaDouble:
    """The user's Ollama holds smollm2:135m (its blob is the packaged GGUF); its Hugging Face weights are absent."""
    ollama.pull_gguf(SMOLLM2_TAG, gguf)
    return ollama


def test_a_gguf_file_is_described_by_its_own_metadata(gguf: Path) -> None:
    from tools.models.catalog import resolve

    entry = resolve(str(gguf))
    assert entry.gguf == str(gguf.resolve())
    assert entry.architecture == "LlamaForCausalLM"
    assert (entry.template_family, entry.template_variant) == ("chatml", "smollm2")
    assert "<|im_end|>" in entry.stop_tokens
    assert entry.context == 8192
    assert entry.quantization == "Q4_1"
    # counted from the file's tensors, embeddings tied: SmolLM2-135M has 134.5M parameters
    assert entry.params_b == pytest.approx(0.1345, abs=0.001)
    assert entry.shape is not None
    assert (entry.shape.hidden, entry.shape.layers, entry.shape.vocab) == (576, 30, 49152)


def test_a_catalog_model_comes_from_ollama_when_its_hub_weights_are_absent(holding: OllamaDouble, gguf: Path) -> None:
    from tools.download import needs_download
    from tools.models.catalog import resolve

    entry = resolve("smollm2-135m")
    assert entry.gguf == str(gguf)
    assert entry.ollama_tag == SMOLLM2_TAG
    assert "in your Ollama" in entry.note
    assert resolve(SMOLLM2_TAG).gguf == str(gguf)  # its Ollama name too
    assert not needs_download("smollm2-135m")
    assert any(r.path == "/api/show" for r in holding.requests)


def test_without_ollama_the_same_name_still_asks_for_a_download() -> None:
    from tools.download import needs_download
    from tools.models.catalog import load_tokenizer, resolve

    entry = resolve("smollm2-135m")
    assert not entry.gguf
    assert needs_download("smollm2-135m")
    with pytest.raises(UsageError) as err:
        load_tokenizer("smollm2-135m")
    assert "mtw download smollm2-135m" in err.value.fix


def test_a_model_only_ollama_knows_is_found_by_its_ollama_name(ollama: OllamaDouble, gguf: Path) -> None:
    from tools.models.catalog import resolve

    ollama.pull_gguf("team/tiny-writer:v2", gguf)
    entry = resolve("team/tiny-writer:v2")
    assert (entry.key, entry.ollama_tag, entry.gguf) == ("team/tiny-writer:v2", "team/tiny-writer:v2", str(gguf))
    with pytest.raises(UsageError) as err:
        resolve("team/not-pulled:v1")
    assert "not a model in your Ollama" in err.value.message


def test_a_model_ollama_holds_in_a_file_this_machine_cannot_read_is_not_taken(ollama: OllamaDouble,
                                                                               tmp_path: Path) -> None:
    from tools.models.catalog import resolve

    ollama.pull_gguf(SMOLLM2_TAG, tmp_path / "blobs" / "sha256-gone")  # Ollama on another machine, say
    assert not resolve("smollm2-135m").gguf


def test_a_lora_adapter_gguf_is_refused_as_a_base(tmp_path: Path, gguf: Path) -> None:
    from gguf import GGUFWriter

    from tools.models.catalog import resolve

    path = tmp_path / "adapter.gguf"
    writer = GGUFWriter(str(path), "llama")
    writer.add_type("adapter")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    with pytest.raises(UsageError) as err:
        resolve(str(path))
    assert "is a LoRA adapter, not a base model" in err.value.message


def test_the_tokenizer_comes_from_the_gguf_and_is_kept_beside_the_cache(gguf: Path, mtw_home: Path) -> None:
    from tools.models.catalog import load_tokenizer

    tok = load_tokenizer(str(gguf))
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                    "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>"
    (kept,) = (mtw_home / "cache" / "gguf").iterdir()
    assert (kept / "config.json").is_file()
    written = (kept / "config.json").stat().st_mtime_ns
    load_tokenizer(str(gguf))
    assert (kept / "config.json").stat().st_mtime_ns == written  # made once per file


@pytest.mark.timeout(600)
def test_a_run_on_ollamas_weights_records_them_and_keeps_using_them(holding: OllamaDouble, gguf: Path,
                                                                    tmp_path: Path) -> None:
    """Trained on smollm2:135m from Ollama; evaluated after Ollama stopped: the same weights, from the record."""
    import torch

    from tools.train.bases import run_base, run_entry
    from tools.train.config import build_config
    from tools.train.modeling import load_tuned
    from tools.train.sft import train

    data = tmp_path / "stories.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Write a user story for {f}."},
        {"role": "assistant", "content": f"As a user, I want {f}, so that I save time."}]}) + "\n"
        for f in ("CSV export", "dark mode", "team invites", "billing page", "search filters", "audit log")),
        encoding="utf-8")
    cfg = build_config("smollm2-135m", str(data), max_steps=1,
                       sets=["min_examples=5", "val_share=0", "batch_size=2", "context=128"])
    final = train(cfg, tmp_path / "run")
    assert final["type"] == "done", final
    base = run_base(tmp_path / "run")
    assert base is not None
    assert (base.model, base.gguf, base.ollama_model, base.quantization) == (
        "smollm2-135m", str(gguf), SMOLLM2_TAG, "Q4_1")

    holding.stop()  # Ollama away: the record still names the file
    assert run_entry(tmp_path / "run", "smollm2-135m").gguf == str(gguf)
    model, tok, _ = load_tuned(tmp_path / "run")
    lora = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora
    assert any(float(p.abs().sum()) > 0 for p in lora)  # the trained adapter, on top of
    assert model.get_base_model().model.embed_tokens.weight.shape == torch.Size([49152, 576])  # the real base


def test_a_run_whose_recorded_weights_are_gone_says_so(tmp_path: Path, gguf: Path) -> None:
    from tools.train.bases import BASE_FILE, run_entry

    moved = tmp_path / "copy.gguf"
    shutil.copyfile(gguf, moved)
    run = tmp_path / "run"
    run.mkdir()
    (run / BASE_FILE).write_text(json.dumps({"model": "smollm2-135m", "gguf": str(moved),
                                             "ollama_model": SMOLLM2_TAG}), encoding="utf-8")
    assert run_entry(run, "smollm2-135m").gguf == str(moved)
    moved.unlink()
    with pytest.raises(UsageError) as err:
        run_entry(run, "smollm2-135m")
    assert "no longer on this machine" in err.value.message
    assert f"ollama pull {SMOLLM2_TAG}" in err.value.fix
