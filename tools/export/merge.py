"""Fold a LoRA adapter into its base, save it as safetensors, and turn it into GGUF when asked."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import MTWError, UsageError

if TYPE_CHECKING:
    from tools.models.catalog import CatalogEntry

CONVERTER = "convert_hf_to_gguf.py"
LORA_CONVERTER = "convert_lora_to_gguf.py"
GET_CONVERTER = (
    "Get llama.cpp's converters (they are not bundled): `git clone https://github.com/ggml-org/llama.cpp`, or "
    "unpack the source of `pip download --no-binary :all: --no-deps llama-cpp-python` (it sits in "
    "vendor/llama.cpp); then `export LLAMA_CPP_DIR=/path/to/llama.cpp`. They run with this tool's own Python "
    "packages. Or use --route merged where Ollama converts the model itself."
)
CONVERTER_MODULES = ("gguf", "numpy", "safetensors", "sentencepiece", "torch", "transformers")
"""The Python modules llama.cpp's converters import: `gguf` ships inside llama.cpp, the rest with this tool."""


def check_disk(need_bytes: int, free_bytes: int, where: Path) -> None:
    """Raise when `need_bytes` (plus a 10 % margin) do not fit in `free_bytes` at `where`."""
    need = int(need_bytes * 1.1)
    if need > free_bytes:
        raise MTWError(f"Not enough free disk at {where}: the export needs about {need / 1e9:.2f} GB and "
                       f"{free_bytes / 1e9:.2f} GB are free.",
                       "Free some space (old runs' checkpoints/ folders are safe to delete), or move the run folder "
                       "to a bigger disk.", code="disk_full")


def free_bytes(path: Path) -> int:
    """Free bytes on the disk that holds `path` (or its nearest existing parent)."""
    probe = Path(path).resolve()
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def merged_size_bytes(params: int, dtype_bytes: int) -> int:
    """Disk a merged model takes: every weight at its dtype, plus ~20 MB for config and tokenizer."""
    return params * dtype_bytes + 20_000_000


def merge_peft_model(peft_model: Any, progress: Callable[[int, int], None] | None = None) -> Any:
    """The base model with the LoRA deltas added into its weights.

    Layer by layer (each adapted layer's `merge`, then peft's `unload` drops the adapter modules),
    so `progress(done, total)` can follow it in bytes of base weights merged.
    """
    from peft.tuners.lora import LoraLayer

    layers = [m for m in peft_model.modules() if isinstance(m, LoraLayer)]
    sizes = [_weight_bytes(m.get_base_layer()) for m in layers]
    total, done = sum(sizes), 0
    for layer, size in zip(layers, sizes, strict=True):
        layer.merge()
        done += size
        if progress is not None:
            progress(done, total)
    return peft_model.unload()


def _weight_bytes(module: Any) -> int:
    weight = getattr(module, "weight", None)
    return int(weight.numel() * weight.element_size()) if weight is not None else 0


def save_dtype(model: Any) -> Any:
    """The 16-bit dtype to save in: the base's own (bf16 or f16) when it has one, else f16 (what Ollama imports)."""
    import torch

    own = model.config.dtype
    return own if own in (torch.bfloat16, torch.float16) else torch.float16


def base_sentencepiece(entry: CatalogEntry) -> bytes | None:
    """The base's SentencePiece model (`tokenizer.model`), or None when its tokenizer has none.

    transformers no longer writes it on save, and both Ollama's and llama.cpp's converters read a SentencePiece
    vocabulary only from this file.
    """
    from tools.models.catalog import TINY_RANDOM, local_source
    from tools.models.tiny import SENTENCEPIECE_FILE, sentencepiece_model

    if entry.key == TINY_RANDOM:
        return sentencepiece_model()
    found = Path(local_source(entry)) / SENTENCEPIECE_FILE
    return found.read_bytes() if found.is_file() else None


def save_merged(model: Any, tokenizer: Any, out_dir: Path, sentencepiece: bytes | None = None) -> list[Path]:
    """Write 16-bit safetensors weights, config and tokenizer to `out_dir`; returns the files written."""
    from transformers.utils import logging

    from tools.fileio import atomic_write_bytes
    from tools.models.tiny import SENTENCEPIECE_FILE

    out_dir.mkdir(parents=True, exist_ok=True)
    # our own progress bar is already on screen; a second one from transformers would garble it
    logging.disable_progress_bar()
    try:
        model.to(save_dtype(model)).save_pretrained(out_dir, safe_serialization=True)
    finally:
        logging.enable_progress_bar()
    # converters read the chat template from tokenizer_config.json only, not from chat_template.jinja
    tokenizer.save_pretrained(out_dir, save_jinja_files=False)
    if sentencepiece is not None:
        atomic_write_bytes(out_dir / SENTENCEPIECE_FILE, sentencepiece)
    _write_bos_eos_flags(tokenizer, out_dir / "tokenizer_config.json")
    return sorted(p for p in out_dir.iterdir() if p.is_file())


def _write_bos_eos_flags(tokenizer: Any, config_file: Path) -> None:
    """Record whether the tokenizer adds BOS / EOS to plain text: converters read these flags, transformers omits them.

    Without them llama.cpp assumes a SentencePiece model adds BOS, and the engine would see prompts the model
    was never trained on; an added EOS would end every prompt before the answer starts.
    """
    from tools.fileio import atomic_write_json

    config = json.loads(config_file.read_text(encoding="utf-8"))
    ids = list(tokenizer("a")["input_ids"])
    config["add_bos_token"] = bool(ids) and ids[0] == tokenizer.bos_token_id
    config["add_eos_token"] = bool(ids) and ids[-1] == tokenizer.eos_token_id
    atomic_write_json(config_file, config)


def merge_run(run_dir: Path, out_dir: Path, progress: Callable[[str, int, int], None]) -> list[Path]:
    """Load the tuned model of `run_dir`, merge its adapter, save it to `out_dir`; returns the files written.

    `progress(what, done, total)` follows each phase; the merge itself in bytes (total 0 = no measure).
    """
    import torch

    from tools.train.modeling import load_tuned

    progress("loading the tuned model", 0, 0)
    with warnings.catch_warnings():
        # library deprecation notices say nothing a user can act on
        warnings.simplefilter("ignore", FutureWarning)
        model, tokenizer, cfg = load_tuned(run_dir)
    params = sum(p.numel() for p in model.parameters())
    check_disk(merged_size_bytes(params, 2), free_bytes(out_dir), out_dir)
    what = "merging the adapter into the base weights"
    progress(what, 0, 0)
    with torch.no_grad():
        merged = merge_peft_model(model, lambda done, total: progress(what, done, total))
    progress("saving the merged model", 0, 0)
    from tools.train.bases import run_entry

    return save_merged(merged, tokenizer, out_dir, base_sentencepiece(run_entry(run_dir, cfg.model)))


def find_converter(env: Mapping[str, str] | None = None, script: str = CONVERTER) -> Path | None:
    """One of llama.cpp's converter scripts from LLAMA_CPP_DIR or PATH; None when the user does not have it."""
    env = os.environ if env is None else env
    root = env.get("LLAMA_CPP_DIR")
    if root:
        for candidate in (Path(root) / script, Path(root) / "vendor" / "llama.cpp" / script):
            if candidate.is_file():
                return candidate
    found = shutil.which(script, path=env.get("PATH"))
    return Path(found) if found else None


def require_converter(env: Mapping[str, str] | None = None, script: str = CONVERTER) -> Path:
    """The converter script, or a UsageError that says how to get it."""
    found = find_converter(env, script)
    if found is None:
        where = (env if env is not None else os.environ).get("LLAMA_CPP_DIR")
        looked = f"LLAMA_CPP_DIR={where}" if where else "LLAMA_CPP_DIR is not set"
        route = "gguf-adapter" if script == LORA_CONVERTER else "gguf"
        raise UsageError(f"The {route} route needs llama.cpp's {script}, and it is not on this machine ({looked}; "
                         "not on PATH either).", GET_CONVERTER)
    return found


_MISSING_MODULE = re.compile(r"No module named '([\w.]+)'")


def _run_converter(cmd: list[str], what: Path, out_file: Path) -> Path:
    """Run a converter; a failure becomes one plain message (naming a missing Python module when that is why)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode == 0 and out_file.is_file():
        return out_file
    output = proc.stderr or proc.stdout
    missing = _MISSING_MODULE.search(output)
    if missing:
        module = missing.group(1).split(".")[0]
        raise MTWError(f"llama.cpp's converter needs the Python module '{module}', which is not installed here "
                       f"(it imports {', '.join(CONVERTER_MODULES)}).",
                       f"Install it into this tool's environment: `{Path(sys.executable).name} -m pip install "
                       f"{module}` with the same Python (`make install` does it for sentencepiece), then export "
                       "again.", code="gguf_failed")
    tail = output.strip().splitlines()[-3:]
    raise MTWError(f"llama.cpp's converter failed on {what}: {' / '.join(tail) or 'no output'}.",
                   "Update llama.cpp (a newer converter knows more architectures), or try --route merged.",
                   code="gguf_failed")


def convert_to_gguf(converter: Path, merged_dir: Path, out_file: Path, outtype: str = "f16") -> Path:
    """Run llama.cpp's converter on a merged model folder; returns the GGUF file."""
    cmd = [sys.executable, str(converter), str(merged_dir), "--outfile", str(out_file), "--outtype", outtype]
    return _run_converter(cmd, merged_dir, out_file)


def convert_adapter_to_gguf(converter: Path, adapter_dir: Path, base_dir: Path, out_file: Path,
                            outtype: str = "f16") -> Path:
    """Run llama.cpp's LoRA converter (`general.type=adapter`); `base_dir` holds the base's config.json."""
    cmd = [sys.executable, str(converter), str(adapter_dir), "--base", str(base_dir), "--outfile", str(out_file),
           "--outtype", outtype]
    return _run_converter(cmd, adapter_dir, out_file)


def base_config_dir(entry: CatalogEntry, out_dir: Path) -> Path:
    """A folder with the base's config.json, which the LoRA converter reads (tiny-random's is written here; a GGUF
    base's comes from its companion folder)."""
    from tools.models.catalog import TINY_RANDOM, build_tiny_random, local_source

    if entry.key != TINY_RANDOM:
        return Path(local_source(entry))
    out_dir.mkdir(parents=True, exist_ok=True)
    config = build_tiny_random(seed=0).config
    # the converter finds the architecture by this name, which only a saved model writes by itself
    config.architectures = [entry.architecture]
    config.save_pretrained(out_dir)
    return out_dir
