"""The base models a user can pick: what each needs for training and export, and the built-in `tiny-random`."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import UsageError
from tools.hub_cache import local_snapshot
from tools.models import tiny
from tools.models.chat_templates import (
    CHAT_TEMPLATES,
    FAMILY_BY_TYPE,
    STOPS,
    TemplateFamily,
    TemplateVariant,
    chat_template_text,
    family_from_template,
    variant_from_template,
)
from tools.models.gguf_file import companion, is_gguf, read_info
from tools.models.tiny import tiny_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TINY_RANDOM = "tiny-random"
TINY_RANDOM_NOTE = "for trying the workflow and for tests: it learns the format of a dataset, nothing more"

ATTENTION_MLP = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PHI3_TARGETS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
BERT_TARGETS = ("query", "key", "value", "dense")


@dataclass(frozen=True)
class ModelShape:
    """The sizes that decide a model's training memory and time."""

    hidden: int
    layers: int
    vocab: int
    intermediate: int
    """Width of the MLP inside each layer (4 × hidden in the classic transformer, wider in most recent ones)."""
    params_b: float
    """Parameters, in billions."""


@dataclass(frozen=True)
class CatalogEntry:
    """A base model and the facts training and export need about it."""

    key: str
    """Short name the user types (`--model qwen2.5-0.5b`)."""
    hf_id: str
    """Hugging Face id, or the local folder the entry was read from."""
    ollama_tag: str | None
    """The same weights in Ollama's library (the `FROM` of an exported adapter), if any."""
    architecture: str
    """transformers architecture class, e.g. `LlamaForCausalLM`."""
    template_family: TemplateFamily
    """Which chat template the model was tuned on; decides the Modelfile TEMPLATE."""
    stop_tokens: tuple[str, ...]
    """End-of-turn markers: trained into the labels and set as Ollama `stop` parameters."""
    lora_targets: tuple[str, ...]
    """Module names LoRA adapts by default."""
    context: int
    """Longest context the model supports, in tokens."""
    ollama_adapter_ok: bool
    """True when Ollama imports a safetensors LoRA `ADAPTER` for this architecture (llama, gemma2)."""
    params_b: float
    """Parameters, in billions."""
    note: str = ""
    """One plain sentence for the user."""
    shape: ModelShape | None = None
    """Hidden size, layers, vocabulary and MLP width: what the estimate needs without downloading anything."""
    template_variant: TemplateVariant = ""
    """The base's own chat template when it adds to its family's (Qwen2.5's default system prompt, Llama-3.2's
    dated header); decides the exported TEMPLATE with `template_family`."""
    gguf: str = ""
    """The GGUF file the weights are read from (a file the user named, or the model in their Ollama); "" for a
    Hugging Face folder."""
    quantization: str = ""
    """How that GGUF stores its weights (Q4_K_M, F16 …); training dequantizes them."""


def _entry(key: str, hf_id: str, tag: str | None, arch: str, family: TemplateFamily, params_b: float,
           context: int, note: str, shape: tuple[int, int, int, int], variant: TemplateVariant = "") -> CatalogEntry:
    stops = {"phi3": ("<|end|>", "<|endoftext|>"), "llama3": ("<|eot_id|>",), "chatml": ("<|im_end|>",),
             "gemma": ("<end_of_turn>",)}[family]
    adapter_ok = arch in ("LlamaForCausalLM", "Gemma2ForCausalLM")
    targets = PHI3_TARGETS if arch == "Phi3ForCausalLM" else ATTENTION_MLP
    return CatalogEntry(key, hf_id, tag, arch, family, stops, targets, context, adapter_ok, params_b, note,
                        ModelShape(*shape, params_b=params_b), variant)


CATALOG: dict[str, CatalogEntry] = {e.key: e for e in (
    _entry("phi-4-mini", "microsoft/Phi-4-mini-instruct", "phi4-mini", "Phi3ForCausalLM", "phi3", 3.84, 131072,
           "The guide's recommended base: strong writing for its size; needs about 16 GB RAM to train on CPU.",
           (3072, 32, 200064, 8192)),
    _entry("llama-3.2-1b", "meta-llama/Llama-3.2-1B-Instruct", "llama3.2:1b", "LlamaForCausalLM", "llama3", 1.24,
           131072, "Small and quick to train; Ollama can load its adapter directly.", (2048, 16, 128256, 8192),
           "llama3.2"),
    _entry("llama-3.2-3b", "meta-llama/Llama-3.2-3B-Instruct", "llama3.2:3b", "LlamaForCausalLM", "llama3", 3.21,
           131072, "Good quality for PM writing; Ollama can load its adapter directly.", (3072, 28, 128256, 8192),
           "llama3.2"),
    _entry("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B-Instruct", "qwen2.5:0.5b", "Qwen2ForCausalLM", "chatml", 0.49, 32768,
           "The smallest useful base: trains fast even on a laptop CPU.", (896, 24, 151936, 4864), "qwen2.5"),
    _entry("qwen2.5-1.5b", "Qwen/Qwen2.5-1.5B-Instruct", "qwen2.5:1.5b", "Qwen2ForCausalLM", "chatml", 1.54, 32768,
           "A balance of speed and quality.", (1536, 28, 151936, 8960), "qwen2.5"),
    _entry("qwen2.5-3b", "Qwen/Qwen2.5-3B-Instruct", "qwen2.5:3b", "Qwen2ForCausalLM", "chatml", 3.09, 32768,
           "Strong at structured output such as user stories and specs.", (2048, 36, 151936, 11008), "qwen2.5"),
    _entry("gemma-2-2b", "google/gemma-2-2b-it", "gemma2:2b", "Gemma2ForCausalLM", "gemma", 2.61, 8192,
           "Fluent writer; Ollama can load its adapter directly.", (2304, 26, 256000, 9216)),
    _entry("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2:135m", "LlamaForCausalLM", "chatml", 0.135,
           8192, "The smallest real instruct model: trains a first round in minutes on any CPU; limited quality.",
           (576, 30, 49152, 1536), "smollm2"),
    _entry("smollm2-360m", "HuggingFaceTB/SmolLM2-360M-Instruct", "smollm2:360m", "LlamaForCausalLM", "chatml", 0.36,
           8192, "Tiny and fast; good for a first try, limited quality.", (960, 32, 49152, 2560), "smollm2"),
    _entry("smollm2-1.7b", "HuggingFaceTB/SmolLM2-1.7B-Instruct", "smollm2:1.7b", "LlamaForCausalLM", "chatml", 1.71,
           8192, "Small and capable; Ollama can load its adapter directly.", (2048, 24, 49152, 8192), "smollm2"),
    CatalogEntry(TINY_RANDOM, TINY_RANDOM, None, "LlamaForCausalLM", "chatml", ("<|im_end|>",), ATTENTION_MLP, 4096,
                 False, 0.002, f"A tiny randomly initialised model built locally in seconds, {TINY_RANDOM_NOTE}.",
                 ModelShape(64, 2, 30524, 128, params_b=0.002)),
)}

def find_in_catalog(model: str) -> CatalogEntry | None:
    """The catalog entry named by its key, its Hugging Face id or its Ollama tag; None when it is not listed."""
    name = model.strip()
    if name in CATALOG:
        return CATALOG[name]
    for entry in CATALOG.values():
        # people name models the way Ollama does ("phi4-mini", "llama3.2:3b"): accept that too
        if entry.hf_id.lower() == name.lower() or (entry.ollama_tag and entry.ollama_tag == name):
            return entry
    return None


def resolve(model: str, *, ask_ollama: bool = True) -> CatalogEntry:
    """Find `model` as a catalog key, its Ollama tag, a Hugging Face id, a local model folder, a GGUF file, a model
    in the user's Ollama, or `tiny-random`.

    A catalog model whose Hugging Face weights are not on this machine but which the user's Ollama holds is read
    from Ollama's own GGUF file: nothing to download. `ask_ollama=False` contacts nothing (a dry run).
    """
    name = model.strip()
    path = Path(name).expanduser()
    if path.is_file() and is_gguf(path):
        return entry_from_gguf(path)
    listed = find_in_catalog(name)
    if listed is not None:
        if listed.key == TINY_RANDOM or _cached_folder(listed.hf_id) is not None or not listed.ollama_tag:
            return listed
        held = _in_ollama(listed.ollama_tag) if ask_ollama else None
        return entry_from_gguf(held.path, key=listed.key, ollama_tag=listed.ollama_tag) if held else listed
    if (path / "config.json").is_file():
        return _entry_from_folder(path)
    cached = _cached_folder(name)
    if cached is not None:
        return _entry_from_folder(cached, key=name)
    held = _in_ollama(name) if ask_ollama and _looks_like_ollama_name(name) else None
    if held is not None:
        return entry_from_gguf(held.path, key=name, ollama_tag=name)
    known = ", ".join(CATALOG)
    hub_id = name.count("/") == 1 and not path.exists()
    raise UsageError(
        f"Unknown model '{model}': it is not in the catalog, not a folder with a config.json or a GGUF file, "
        "not a Hugging Face model already downloaded on this machine, and not a model in your Ollama.",
        fix=(f"If it is a Hugging Face id, download it first: `mtw download {shlex.quote(str(name))}`. "
             f"Or use one of: {known}."
             if hub_id else f"Use one of: {known}; a model you have in Ollama (`ollama list`); or the path to a "
                            "downloaded model folder or .gguf file."),
    )


def _looks_like_ollama_name(name: str) -> bool:
    """Ollama names are `name` or `name:tag`, perhaps under a namespace (`user/name:tag`); no paths."""
    return bool(name) and not name.startswith((".", "/", "~")) and name.count("/") <= 1 and " " not in name


def _in_ollama(tag: str) -> Any:
    """The user's Ollama's GGUF file for `tag`, if Ollama answers and holds it (tools.ollama_api.gguf_blob)."""
    from tools.ollama_api import gguf_blob

    return gguf_blob(tag)


def entry_from_gguf(path: Path, *, key: str | None = None, ollama_tag: str | None = None) -> CatalogEntry:
    """Describe a model from its GGUF file's own metadata: architecture, sizes, chat template and end of turn."""
    info = read_info(path)
    family = family_from_template(info.chat_template) or FAMILY_BY_TYPE.get(info.arch, "chatml")
    stops = STOPS[family]
    if info.eos_token and info.eos_token not in stops and info.eos_token in info.chat_template:
        stops = (info.eos_token, *stops)
    targets = PHI3_TARGETS if info.architecture == "Phi3ForCausalLM" else ATTENTION_MLP
    shape = ModelShape(info.hidden, info.layers, info.vocab, info.intermediate, params_b=info.params / 1e9)
    where = f"the model '{ollama_tag}' in your Ollama" if ollama_tag else str(info.path)
    return CatalogEntry(key or info.path.stem, str(info.path), ollama_tag, info.architecture, family, stops, targets,
                        info.context, info.architecture in ("LlamaForCausalLM", "Gemma2ForCausalLM"),
                        shape.params_b, f"Read from {where} ({info.quantization} GGUF, dequantized for training).",
                        shape, variant_from_template(info.chat_template), gguf=str(info.path),
                        quantization=info.quantization)


def _cached_folder(hf_id: str) -> Path | None:
    """The local snapshot of a Hugging Face id in the hub cache (HF_HOME / HF_HUB_CACHE read now; no network)."""
    folder = local_snapshot(hf_id)
    return folder if folder is not None and (folder / "config.json").is_file() else None


def local_source(entry: CatalogEntry) -> str:
    """Where `from_pretrained` reads the entry: its folder, its snapshot in the hub cache, or (not here) its id; for a
    GGUF, the folder of its config and tokenizer files (tools/train/gguf_file.companion)."""
    if entry.gguf:

        return str(companion(read_info(entry.gguf)))
    if Path(entry.hf_id).is_dir():
        return entry.hf_id
    cached = _cached_folder(entry.hf_id)
    return str(cached) if cached is not None else entry.hf_id


def _entry_from_folder(folder: Path, key: str | None = None) -> CatalogEntry:
    """Describe a model from its own config.json (and its tokenizer's chat template)."""
    try:
        config: dict[str, Any] = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"Cannot read {folder / 'config.json'}: {exc}.",
                         fix="Point --model at a complete model folder (config.json, weights, tokenizer).") from exc
    arch = (config.get("architectures") or ["unknown"])[0]
    model_type = str(config.get("model_type", ""))
    template_text = chat_template_text(folder)
    family = family_from_template(template_text) or FAMILY_BY_TYPE.get(model_type, "chatml")
    targets: tuple[str, ...]
    if model_type == "bert" or arch.startswith("Bert"):
        targets = BERT_TARGETS
    elif arch == "Phi3ForCausalLM":
        targets = PHI3_TARGETS
    else:
        targets = ATTENTION_MLP
    context = int(config.get("max_position_embeddings") or 2048)
    ok = arch in ("LlamaForCausalLM", "Gemma2ForCausalLM")
    shape = shape_from_config(config)
    return CatalogEntry(key or folder.name, str(folder), None, arch, family, STOPS[family], targets, context, ok,
                        shape.params_b if shape else 0.0, f"Read from {folder}.", shape,
                        variant_from_template(template_text))


def shape_from_config(config: dict[str, Any]) -> ModelShape | None:
    """A model's sizes from its config.json (parameters counted from them: embeddings, attention and MLP);
    None when the config does not name them."""
    cfg = config.get("text_config", config)  # multimodal configs nest the language model's sizes
    if not all(isinstance(cfg.get(k), int) for k in ("hidden_size", "num_hidden_layers", "vocab_size")):
        return None
    h, layers, v = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"]), int(cfg["vocab_size"])
    inter = int(cfg.get("intermediate_size") or 4 * h)
    params = layers * (4 * h * h + 3 * h * inter) + 2 * v * h
    return ModelShape(h, layers, v, inter, params / 1e9)


MINILM_SHAPE = ModelShape(384, 6, 30522, 1536, params_b=0.0227)
"""The packaged sentence encoder behind `--model minilm` (classification and entity tagging)."""


def model_shape(model: str) -> ModelShape:
    """The model's sizes: the catalog's for listed models and the packaged encoder, else its config.json."""
    if model.strip().lower() in ("minilm", "all-minilm-l6-v2"):
        return MINILM_SHAPE
    entry = resolve(model)
    if entry.shape is None:
        raise UsageError(f"The sizes of '{model}' are not known.", fix="Point --model at a folder with a config.json.")
    return entry.shape


def load_tokenizer(model: str) -> PreTrainedTokenizerBase:
    """The model's tokenizer, offline, with a chat template, an end-of-turn token and a pad token set."""
    entry = resolve(model)
    if entry.key == TINY_RANDOM:
        return tiny_random_tokenizer()
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(local_source(entry), local_files_only=True, trust_remote_code=False)
    except OSError as exc:
        raise UsageError(
            f"The tokenizer of '{model}' is not on this machine ({exc}).",
            fix=f"Download the model once while online with `mtw download {shlex.quote(str(model))}`, "
                "or use --model tiny-random to try the workflow.",
        ) from exc
    if not tok.chat_template:
        tok.chat_template = CHAT_TEMPLATES[entry.template_family]
    if tok.eos_token is None:
        tok.eos_token = entry.stop_tokens[0]
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def tiny_random_tokenizer() -> PreTrainedTokenizerBase:
    """tiny-random's character vocabulary with ChatML turn markers (see tools/models/tiny.py)."""
    tok = tiny_tokenizer(CATALOG[TINY_RANDOM].context)
    tok.chat_template = CHAT_TEMPLATES["chatml"]
    return tok


TINY_RANDOM_VOCAB = tiny.VOCAB_SIZE
"""Printable ASCII, 256 byte pieces and six special tokens."""


def build_tiny_random(seed: int = 0, *, vocab_size: int = TINY_RANDOM_VOCAB, hidden_size: int = 64,
                      num_layers: int = 2, num_heads: int = 4, num_kv_heads: int = 2, intermediate_size: int = 128,
                      context: int = 4096) -> PreTrainedModel:
    """A tiny Llama-shaped model with random weights, the same for the same seed, built in well under a second."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        max_position_embeddings=context, tie_word_embeddings=False,
        bos_token_id=tiny.TOKEN_IDS[tiny.BOS], eos_token_id=tiny.TOKEN_IDS[tiny.IM_END],
        pad_token_id=tiny.TOKEN_IDS[tiny.PAD],
    )
    # fork the rng so building the model neither depends on nor disturbs the caller's random state
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        # unit-scale output weights: with the default 0.02 the logits span so little that even a perfectly
        # trained adapter could not push the loss much below log(vocab), and the curve would look flat
        torch.nn.init.normal_(model.lm_head.weight, std=hidden_size**-0.5)
    model.generation_config.eos_token_id = tiny.TOKEN_IDS[tiny.IM_END]
    model.generation_config.pad_token_id = tiny.TOKEN_IDS[tiny.PAD]
    return model
