"""The route table: which way each base goes into Ollama, and why."""

from __future__ import annotations

import pytest

from tools.errors import UsageError
from tools.export.routes import CONVERTIBLE, arch_name, choose_route, parse_version

LLAMA = {"architecture": "LlamaForCausalLM", "ollama_tag": "llama3.2:1b", "adapter_ok": True}
PHI3 = {"architecture": "Phi3ForCausalLM", "ollama_tag": "phi4-mini", "adapter_ok": False}
GEMMA2 = {"architecture": "Gemma2ForCausalLM", "ollama_tag": "gemma2:2b", "adapter_ok": True}
QWEN2 = {"architecture": "Qwen2ForCausalLM", "ollama_tag": "qwen2.5:0.5b", "adapter_ok": False}
GEMMA3 = {"architecture": "Gemma3ForCausalLM", "ollama_tag": None, "adapter_ok": False}
TINY = {"architecture": "LlamaForCausalLM", "ollama_tag": None, "adapter_ok": False}
OTHER = {"architecture": "FalconForCausalLM", "ollama_tag": None, "adapter_ok": False}
MISTRAL = {"architecture": "MistralForCausalLM", "ollama_tag": None, "adapter_ok": False}


@pytest.mark.parametrize(("base", "quant", "version", "route", "says"), [
    (LLAMA, "F16", "0.12.6", "adapter", "full-precision (F16)"),
    (GEMMA2, "BF16", "0.6.0", "adapter", "adapter learned on"),
    (LLAMA, "Q4_K_M", "0.12.6", "merged", "is Q4_K_M"),
    (LLAMA, None, "0.12.6", "merged", "could not be checked"),
    (LLAMA, "F16", None, "adapter", "full-precision"),
    (PHI3, "Q4_K_M", "0.12.6", "merged", "cannot load a LoRA adapter on a phi3 base"),
    (QWEN2, None, "0.12.6", "merged", "qwen2 is an architecture it knows"),
    (TINY, None, None, "merged", "not in Ollama's library"),
    (GEMMA3, None, "0.5.7", "gguf", "needs 0.6.0"),
    (GEMMA3, None, "0.6.1", "merged", "gemma3"),
    (OTHER, None, "0.12.6", "gguf", "cannot convert falcon"),
    (MISTRAL, None, "0.12.6", "gguf", "cannot convert mistral"),
])
def test_auto_picks_the_route_and_says_why(base: dict, quant: str | None, version: str | None,
                                           route: str, says: str) -> None:
    choice = choose_route("auto", base_quantization=quant, ollama_version=version, **base)
    assert choice.route == route
    assert says in choice.reason


def test_old_ollama_is_told_to_update() -> None:
    with pytest.raises(UsageError, match="0.5.1") as err:
        choose_route("auto", base_quantization=None, ollama_version="0.5.1", **LLAMA)
    assert "ollama.com/download" in err.value.fix


@pytest.mark.parametrize(("base", "route", "message", "fix"), [
    (PHI3, "adapter", "only for llama and gemma2", "--route merged"),
    (TINY, "adapter", "no Ollama tag", "--route merged"),
    (OTHER, "merged", "cannot convert falcon", "--route gguf"),
    (LLAMA, "fast", "Unknown route 'fast'", "auto, adapter, gguf-adapter, merged, gguf"),
    (TINY, "gguf-adapter", "no Ollama tag", "--route merged"),
    (QWEN2 | {"architecture": "MistralForCausalLM"}, "merged", "cannot convert mistral", "--route gguf"),
])
def test_impossible_requests_are_refused_with_the_way_out(base: dict, route: str, message: str, fix: str) -> None:
    with pytest.raises(UsageError, match=message) as err:
        choose_route(route, base_quantization=None, ollama_version="0.12.6", **base)
    assert fix in err.value.fix


def test_explicit_routes_are_honoured_when_possible() -> None:
    assert choose_route("adapter", base_quantization="Q4_K_M", ollama_version=None, **LLAMA).route == "adapter"
    assert choose_route("merged", base_quantization=None, ollama_version=None, **LLAMA).route == "merged"
    assert choose_route("gguf", base_quantization=None, ollama_version=None, **QWEN2).route == "gguf"


def test_versions_and_architecture_names_are_read_leniently() -> None:
    assert parse_version("0.12.6") == (0, 12, 6)
    assert parse_version("v0.6.0-rc2") == (0, 6, 0)
    assert parse_version("0.6") == (0, 6, 0)
    assert parse_version("unknown") is None
    assert arch_name("Phi3ForCausalLM") == "phi3"
    assert arch_name("StarcoderForCausalLM") == "starcoder"


# one row per architecture in Ollama's safetensors conversion table (v0.33): the first version that converts it
@pytest.mark.parametrize(("arch", "first"), [
    ("LlamaForCausalLM", "0.5.5"), ("MixtralForCausalLM", "0.5.5"), ("GemmaForCausalLM", "0.5.5"),
    ("Gemma2ForCausalLM", "0.5.5"), ("Phi3ForCausalLM", "0.5.5"), ("Qwen2ForCausalLM", "0.5.6"),
    ("Gemma3ForCausalLM", "0.6.0"),
])
def test_each_convertible_architecture_goes_merged_from_its_first_ollama_version(arch: str, first: str) -> None:
    base = {"architecture": arch, "ollama_tag": None, "adapter_ok": False}
    assert choose_route("auto", base_quantization=None, ollama_version=first, **base).route == "merged"
    before = parse_version(first)
    assert before is not None
    if before > (0, 5, 5):
        older = f"{before[0]}.{before[1]}.{before[2] - 1}" if before[2] else f"{before[0]}.{before[1] - 1}.99"
        assert choose_route("auto", base_quantization=None, ollama_version=older, **base).route == "gguf"


def test_the_table_lists_only_what_current_ollama_converts() -> None:
    assert set(CONVERTIBLE) == {"llama", "mixtral", "gemma", "gemma2", "phi3", "qwen2", "gemma3"}


@pytest.mark.parametrize(("base", "quant", "says"), [
    (QWEN2, "F16", "any base"),
    (PHI3, "Q4_K_M", "as Q4_K_M, so its answers can differ"),
])
def test_a_base_in_ollama_without_safetensors_adapters_gets_a_gguf_adapter(base: dict, quant: str, says: str) -> None:
    choice = choose_route("auto", base_quantization=quant, ollama_version="0.33.0", llama_cpp=True, **base)
    assert choice.route == "gguf-adapter"
    assert says in choice.reason
    # without llama.cpp, or with the base not pulled, the adapter cannot be converted or has nothing to sit on
    assert choose_route("auto", base_quantization=quant, ollama_version="0.33.0", **base).route == "merged"
    assert choose_route("auto", base_quantization=None, ollama_version="0.33.0", llama_cpp=True,
                        **base).route == "merged"
    # llama and gemma2 keep the plain safetensors adapter
    assert choose_route("auto", base_quantization="F16", ollama_version="0.33.0", llama_cpp=True,
                        **LLAMA).route == "adapter"


@pytest.mark.parametrize(("base", "gguf_base", "llama_cpp", "route", "says"), [
    # trained on the very GGUF Ollama holds: a small adapter on it, whatever its quantisation
    (LLAMA, "ollama", True, "gguf-adapter", "very weights of 'llama3.2:1b' in your Ollama (Q4_K_M)"),
    (PHI3, "ollama", True, "gguf-adapter", "nothing else needs uploading"),
    (LLAMA, "ollama", False, "adapter", "applies LoRA adapters to llama bases itself"),
    (PHI3, "ollama", False, "merged", "with LLAMA_CPP_DIR set the export is a small adapter"),
    (OTHER, "ollama", False, "gguf-adapter", "set LLAMA_CPP_DIR"),
    # a GGUF file Ollama does not hold (or no longer the same blob): the adapter applies to that file
    (TINY, "file", True, "gguf-adapter", "its GGUF file"),
])
def test_a_run_trained_on_a_gguf_goes_back_onto_the_same_weights(base: dict, gguf_base: str, llama_cpp: bool,
                                                                  route: str, says: str) -> None:
    choice = choose_route("auto", base_quantization="Q4_K_M", ollama_version="0.12.6", llama_cpp=llama_cpp,
                          gguf_base=gguf_base, **base)
    assert choice.route == route
    assert says in choice.reason


def test_the_gguf_adapter_route_can_be_asked_for_on_a_gguf_file_ollama_does_not_hold() -> None:
    choice = choose_route("gguf-adapter", base_quantization=None, ollama_version="0.12.6", gguf_base="file", **TINY)
    assert choice.route == "gguf-adapter"
    with pytest.raises(UsageError):
        choose_route("gguf-adapter", base_quantization=None, ollama_version="0.12.6", **TINY)
