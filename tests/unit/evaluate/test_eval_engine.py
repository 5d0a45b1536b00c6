"""Base and tuned answers from one llama-server on the base GGUF, the adapter's scale set per request."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.llama_engine import llama_cpp_dir
from tests.fakes.real_model import require_smollm2
from tools.evaluate.engine import (
    LlamaAnswers,
    LlamaServer,
    adapter_gguf,
    answer_sides,
    find_llama_server,
    slot_context,
)

pytestmark = [
    pytest.mark.engine,
    pytest.mark.timeout(600),
    pytest.mark.skipif(llama_cpp_dir() is None,
                       reason="LLAMA_CPP_DIR does not point at a built llama.cpp (bin/llama-server); .ci/run sets it"),
]
SAMPLE = Path(__file__).parents[3] / "examples" / "pm_dataset.jsonl"
PROMPTS = ["Write a user story for a password reset feature.",
           "What is the difference between a product roadmap and a backlog?"]


def converter() -> Path:
    from tools.export.merge import LORA_CONVERTER, require_converter

    return require_converter(script=LORA_CONVERTER)


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """SmolLM2-135M-Instruct's GGUF, its tokenizer, and a run folder holding a LoRA adapter made for it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = require_smollm2()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # an adapter with the base's shapes and non-zero weights: the tuned side must answer differently
    net = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name))
    torch.manual_seed(0)
    lora = get_peft_model(net, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    run = tmp_path_factory.mktemp("smollm2-run")
    lora.save_pretrained(str(run / "adapter"))
    tok.save_pretrained(str(run / "adapter"))
    return {"gguf": gguf, "tokenizer": tok, "run": run}


def test_the_sample_datasets_answers_get_a_cap_they_fit_in(smollm2):
    from tools.evaluate.limits import answer_cap, answer_lengths

    answers = [json.loads(line)["messages"][-1]["content"] for line in SAMPLE.read_text().splitlines()]
    lengths = answer_lengths(smollm2["tokenizer"], answers)
    # about 250 tokens each: the old fixed cap of 256 cut half of them
    assert sum(n > 256 for n in lengths) >= len(lengths) // 3
    assert answer_cap(lengths) >= 1.5 * max(lengths)


def test_scale_zero_is_the_base_and_scale_one_the_tuned_model(smollm2):
    gguf, tok = smollm2["gguf"], smollm2["tokenizer"]
    lora = adapter_gguf(smollm2["run"], gguf, converter())
    assert lora.read_bytes()[:4] == b"GGUF"
    server = find_llama_server()
    assert server is not None
    seen: list[tuple[str, int, int]] = []
    ids = [LlamaAnswers.render(tok, p) for p in PROMPTS]
    # the prompt is the base's own chat template, tokenized as in training
    assert tok.decode(ids[0]).endswith(f"<|im_start|>user\n{PROMPTS[0]}<|im_end|>\n<|im_start|>assistant\n")
    with LlamaServer(server, gguf, lora=lora, threads=1, slots=2, slot_context=slot_context(
            [len(i) for i in ids], 48)) as running:
        answers = LlamaAnswers(running, tok, max_new_tokens=48, slots=2,
                               progress=lambda what, done, total: seen.append((what, done, total)))
        base, tuned = answers(PROMPTS, "base"), answers(PROMPTS, "tuned")
    with LlamaServer(server, gguf, lora=None, threads=1, slots=1, slot_context=512) as plain:
        alone = [plain.completion({"prompt": i, "n_predict": 48, "temperature": 0, "seed": 0}) for i in ids]
    assert [b.text for b in base] == [a["content"].strip() for a in alone]
    assert [t.text for t in tuned] != [b.text for b in base]
    assert all(g.tokens <= 48 and (g.stopped or g.tokens == 48) for g in base + tuned)
    assert seen[-1] == ("tuned answers", 2, 2)
    assert ("base answers", 0, 2) in seen


def test_two_servers_answering_at_once_give_each_side_its_own_answers(smollm2):
    """Base from a server with no adapter, tuned from one with the adapter: the base's answers are the one server's
    scale-0 answers word for word, the tuned ones are the adapter's, and one progress line counts both sides."""
    gguf, tok = smollm2["gguf"], smollm2["tokenizer"]
    lora = adapter_gguf(smollm2["run"], gguf, converter())
    server = find_llama_server()
    assert server is not None
    seen: list[tuple[str, int, int]] = []
    pair = answer_sides(server, gguf, lora, tok, PROMPTS, 48, lambda *s: seen.append(s), layout="pair", threads=2,
                        slots=1)
    one = answer_sides(server, gguf, lora, tok, PROMPTS, 48, None, layout="one", threads=1, slots=1)
    assert [g.text for g in pair["base"]] == [g.text for g in one["base"]]
    assert [g.text for g in pair["tuned"]] != [g.text for g in pair["base"]]
    assert all(g.tokens <= 48 and (g.stopped or g.tokens == 48) for g in pair["base"] + pair["tuned"])
    assert seen[-1] == ("base and tuned answers", 4, 4)
    assert {what for what, _, _ in seen} == {"base and tuned answers"}


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-random's base weights as a GGUF file (what a run that trained on a GGUF would name)."""
    from tools.export.merge import convert_to_gguf, require_converter, save_merged
    from tools.models.catalog import build_tiny_random
    from tools.models.tiny import sentencepiece_model
    from tools.train.modeling import load_tokenizer

    folder = tmp_path_factory.mktemp("tiny-gguf")
    save_merged(build_tiny_random(seed=0), load_tokenizer("tiny-random"), folder / "hf", sentencepiece_model())
    return convert_to_gguf(require_converter(), folder / "hf", folder / "tiny-random.gguf")


@pytest.fixture
def gguf_run(tiny_run, tiny_gguf, tmp_path) -> Path:
    """A copy of the tiny run whose record of its base (base.json) names that GGUF, as a run trained on it does."""
    from tools.fileio import atomic_write_json

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("eval"))
    atomic_write_json(run / "base.json", {"model": "tiny-random", "gguf": str(tiny_gguf), "architecture": "llama"})
    return run


def test_evaluation_answers_both_sides_from_llama_cpp(gguf_run):
    from tools.evaluate.run import evaluate_run

    seen: list[str] = []
    report = evaluate_run(gguf_run, max_new_tokens=48, progress=lambda what, done, total: seen.append(what))
    assert report["generation"]["engine"] == "llama.cpp"
    assert report["notes"] == []
    assert "converting the adapter for llama.cpp" in seen
    rows = report["prompts"]
    assert all(r["base"]["tokens"] <= 48 and r["tuned"]["tokens"] <= 48 for r in rows)
    assert sum(r["base"]["answer"] != r["tuned"]["answer"] for r in rows) >= len(rows) // 2
    assert "llama.cpp (the base GGUF, with the adapter off and on)" in (gguf_run / "eval" / "report.md").read_text()


def test_when_llama_cpp_fails_the_answers_come_from_pytorch_with_a_note(gguf_run, tmp_path, monkeypatch):
    from tools.evaluate.run import evaluate_run

    broken = tmp_path / "llama-server"
    broken.write_text("#!/bin/sh\necho 'error: this build cannot load the model' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr("tools.evaluate.engine.find_llama_server", lambda: broken)
    report = evaluate_run(gguf_run, max_new_tokens=16)
    assert report["generation"]["engine"] == "pytorch"
    assert len(report["prompts"]) > 6
    assert sum(r["base"]["answer"] != r["tuned"]["answer"] for r in report["prompts"]) >= 1
    (note,) = report["notes"]
    assert "this build cannot load the model" in note
    assert "come from PyTorch" in note
