"""Fold a LoRA adapter into its base, save it as safetensors, and turn it into GGUF when asked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tools.errors import MTWError, UsageError

CONVERTER = "convert_hf_to_gguf.py"
GET_CONVERTER = (
    "Get llama.cpp's converter (it is not bundled): `git clone https://github.com/ggml-org/llama.cpp` and "
    "`pip install -r llama.cpp/requirements/requirements-convert_hf_to_gguf.txt`, or unpack the source of "
    "`pip download --no-binary :all: --no-deps llama-cpp-python` (it sits in vendor/llama.cpp); then "
    "`export LLAMA_CPP_DIR=/path/to/llama.cpp`. Or use --route merged where Ollama converts the model itself."
)


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


def save_merged(model: Any, tokenizer: Any, out_dir: Path) -> list[Path]:
    """Write 16-bit safetensors weights, config and tokenizer to `out_dir`; returns the files written."""
    from transformers.utils import logging

    out_dir.mkdir(parents=True, exist_ok=True)
    # our own progress bar is already on screen; a second one from transformers would garble it
    logging.disable_progress_bar()
    try:
        model.to(save_dtype(model)).save_pretrained(out_dir, safe_serialization=True)
    finally:
        logging.enable_progress_bar()
    tokenizer.save_pretrained(out_dir)
    return sorted(p for p in out_dir.iterdir() if p.is_file())


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
        model, tokenizer, _cfg = load_tuned(run_dir)
    params = sum(p.numel() for p in model.parameters())
    check_disk(merged_size_bytes(params, 2), free_bytes(out_dir), out_dir)
    what = "merging the adapter into the base weights"
    progress(what, 0, 0)
    with torch.no_grad():
        merged = merge_peft_model(model, lambda done, total: progress(what, done, total))
    progress("saving the merged model", 0, 0)
    return save_merged(merged, tokenizer, out_dir)


def find_converter(env: Mapping[str, str] | None = None) -> Path | None:
    """llama.cpp's convert_hf_to_gguf.py from LLAMA_CPP_DIR or PATH; None when the user does not have it."""
    env = os.environ if env is None else env
    root = env.get("LLAMA_CPP_DIR")
    if root:
        for candidate in (Path(root) / CONVERTER, Path(root) / "vendor" / "llama.cpp" / CONVERTER):
            if candidate.is_file():
                return candidate
    found = shutil.which(CONVERTER, path=env.get("PATH"))
    return Path(found) if found else None


def require_converter(env: Mapping[str, str] | None = None) -> Path:
    """The converter, or a UsageError that says how to get it."""
    found = find_converter(env)
    if found is None:
        where = (env if env is not None else os.environ).get("LLAMA_CPP_DIR")
        looked = f"LLAMA_CPP_DIR={where}" if where else "LLAMA_CPP_DIR is not set"
        raise UsageError(f"The GGUF route needs llama.cpp's {CONVERTER}, and it is not on this machine ({looked}; "
                         "not on PATH either).", GET_CONVERTER)
    return found


def convert_to_gguf(converter: Path, merged_dir: Path, out_file: Path, outtype: str = "f16") -> Path:
    """Run llama.cpp's converter on a merged model folder; returns the GGUF file."""
    cmd = [sys.executable, str(converter), str(merged_dir), "--outfile", str(out_file), "--outtype", outtype]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out_file.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise MTWError(f"llama.cpp's converter failed on {merged_dir}: {' / '.join(tail) or 'no output'}.",
                       "Install the converter's requirements (requirements-convert_hf_to_gguf.txt in llama.cpp), "
                       "update llama.cpp, or try --route merged.", code="gguf_failed")
    return out_file
