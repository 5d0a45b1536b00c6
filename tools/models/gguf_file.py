"""What a GGUF file says about its model: architecture, sizes, chat template, end-of-turn token, quantisation.

A GGUF (llama.cpp's format, what Ollama keeps its models in) carries everything training needs to know before
its weights are read; transformers then reads and dequantizes the weights themselves (`gguf_file=`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tools.errors import UsageError
from tools.settings import get_settings

MAGIC = b"GGUF"

ARCHITECTURES = {
    "llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM", "phi3": "Phi3ForCausalLM", "gemma2": "Gemma2ForCausalLM",
    "gemma3": "Gemma3ForCausalLM", "stablelm": "StableLmForCausalLM", "starcoder2": "Starcoder2ForCausalLM",
    "falcon": "FalconForCausalLM", "nemotron": "NemotronForCausalLM",
}
"""GGUF architectures transformers can train from (its GGUF loader dequantizes them), by their class name."""


@dataclass(frozen=True)
class GGUFInfo:
    """The metadata of one GGUF model file."""

    path: Path
    arch: str
    """GGUF's architecture name (`llama`, `qwen2`, `phi3` …)."""
    architecture: str
    """The transformers class that trains it (`LlamaForCausalLM`)."""
    name: str
    """The model's own name (general.name), or the file's."""
    hidden: int
    layers: int
    vocab: int
    intermediate: int
    context: int
    chat_template: str
    eos_token: str
    """The token that ends a turn (tokenizer.ggml.eos_token_id's text, e.g. `<|im_end|>`)."""
    quantization: str
    """As Ollama names it: Q4_1, Q4_K_M, F16 …"""
    size_bytes: int
    params: int
    """Parameters, counted from the file's tensors."""


def is_gguf(path: str | Path) -> bool:
    """True for a readable file that starts with GGUF's magic bytes."""
    p = Path(path).expanduser()
    try:
        with p.open("rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


def read_info(path: str | Path) -> GGUFInfo:
    """The metadata of the GGUF at `path` (UsageError in one sentence when it is not a model transformers trains)."""
    p = Path(path).expanduser().resolve()
    stat = p.stat()
    return _read(str(p), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _read(path: str, mtime_ns: int, size: int) -> GGUFInfo:
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a GGUF model file that can be read ({exc}).",
                         fix="Point --model at a .gguf model file (Ollama keeps them in its models/blobs folder), "
                             "a model folder or a catalog name.") from exc

    def field(key: str, default: Any = None) -> Any:
        f = reader.fields.get(key)
        return f.contents() if f is not None else default

    kind = field("general.type", "model")
    if kind == "adapter":
        raise UsageError(f"{path} is a LoRA adapter, not a base model.",
                         fix="Point --model at the base model's GGUF; the adapter is what training makes.")
    arch = str(field("general.architecture", ""))
    if arch not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise UsageError(f"{Path(path).name} holds a '{arch or 'unknown'}' model, which cannot be trained from GGUF "
                         f"here (transformers reads {known}).",
                         fix="Use that model's Hugging Face weights instead (`mtw download …`), or another base.")
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab = int(field(f"{arch}.vocab_size", 0) or (len(tokens.data) if tokens is not None else 0))
    eos_id = field("tokenizer.ggml.eos_token_id")
    eos = ""
    if tokens is not None and isinstance(eos_id, int) and 0 <= eos_id < len(tokens.data):
        eos = str(tokens.contents(eos_id))
    hidden = int(field(f"{arch}.embedding_length", 0))
    return GGUFInfo(
        path=Path(path), arch=arch, architecture=ARCHITECTURES[arch],
        name=str(field("general.name", "") or Path(path).stem), hidden=hidden,
        layers=int(field(f"{arch}.block_count", 0)),
        vocab=vocab, intermediate=int(field(f"{arch}.feed_forward_length", 0) or 4 * hidden),
        context=int(field(f"{arch}.context_length", 2048)),
        chat_template=str(field("tokenizer.chat_template", "") or ""), eos_token=eos,
        quantization=_quantization(field("general.file_type")), size_bytes=size,
        params=sum(int(t.n_elements) for t in reader.tensors))


def _quantization(file_type: Any) -> str:
    """GGUF's file type as Ollama shows it (MOSTLY_Q4_K_M → Q4_K_M, ALL_F32 → F32)."""
    import gguf

    try:
        name = gguf.LlamaFileType(int(file_type)).name
    except (TypeError, ValueError):
        return "unknown"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def companion(info: GGUFInfo) -> Path:
    """A folder beside the cache with the GGUF's config.json and tokenizer files, written once per file.

    transformers rebuilds a GGUF's tokenizer and config from its metadata in seconds each time; training, the
    estimate and the export's converter read them many times, so they are kept as ordinary files
    (MTW_HOME/cache/gguf/<file's id>/). The weights stay in the GGUF and are read from it.
    """
    import hashlib
    import shutil
    import tempfile

    stat = info.path.stat()
    key = hashlib.sha1(f"{info.path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    folder = get_settings().home / "cache" / "gguf" / key
    if (folder / "config.json").is_file():
        return folder
    from transformers import AutoConfig, AutoTokenizer

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=folder.parent))
    try:
        where, name = str(info.path.parent), info.path.name
        tok = AutoTokenizer.from_pretrained(where, gguf_file=name)
        tok.save_pretrained(str(tmp))
        config = AutoConfig.from_pretrained(where, gguf_file=name)
        # the converters and our loaders find the architecture by this name
        config.architectures = [info.architecture]
        config.save_pretrained(str(tmp))
        try:
            tmp.rename(folder)
        except OSError:  # another process wrote it first: theirs is the same
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
