"""Which weights a run trained on, kept in RUN_DIR/base.json, so evaluation and export use exactly those.

A base named `smollm2-135m` may be a Hugging Face folder today and the GGUF in the user's Ollama tomorrow; an
adapter only fits the weights it learned on, so the run records the file (and the Ollama model holding it) once,
when it starts, and everything after reads that record.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tools.errors import UsageError
from tools.fileio import atomic_write_json
from tools.models.catalog import CatalogEntry, entry_from_gguf, resolve

BASE_FILE = "base.json"


@dataclass(frozen=True)
class RunBase:
    """The base weights of one run."""

    model: str
    """The model as the user named it (config.yaml's `model`)."""
    gguf: str = ""
    """The GGUF file the weights were read from; "" for a Hugging Face folder or tiny-random."""
    ollama_model: str = ""
    """The Ollama model that holds that GGUF (an export's FROM), when it came from the user's Ollama."""
    quantization: str = ""
    architecture: str = ""


def record_base(run_dir: Path, entry: CatalogEntry, model: str) -> RunBase:
    """Write RUN_DIR/base.json for a run starting on `entry` (named `model` by the user)."""
    base = RunBase(model=model, gguf=entry.gguf, ollama_model=(entry.ollama_tag or "") if entry.gguf else "",
                   quantization=entry.quantization, architecture=entry.architecture)
    atomic_write_json(Path(run_dir) / BASE_FILE, asdict(base))
    return base


def run_base(run_dir: Path | str) -> RunBase | None:
    """The record of a run's base, or None for a run made before runs kept one."""
    try:
        raw = json.loads((Path(run_dir) / BASE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return RunBase(**{k: str(raw.get(k) or "") for k in RunBase.__dataclass_fields__})


def run_entry(run_dir: Path | str, model: str, *, ask_ollama: bool = True) -> CatalogEntry:
    """The catalog entry of the weights this run trained on: its recorded GGUF when it has one, else `model`."""
    base = run_base(run_dir)
    if base is None or not base.gguf:
        return resolve(model, ask_ollama=ask_ollama)
    if Path(base.gguf).is_file():
        return entry_from_gguf(Path(base.gguf), key=model, ollama_tag=base.ollama_model or None)
    if base.ollama_model and ask_ollama:
        from tools.ollama_api import gguf_blob

        held = gguf_blob(base.ollama_model)
        if held is not None:
            return entry_from_gguf(held.path, key=model, ollama_tag=base.ollama_model)
    where = f"the model '{base.ollama_model}' in your Ollama" if base.ollama_model else "its GGUF file"
    raise UsageError(f"This run trained on {where} ({base.gguf}), which is no longer on this machine.",
                     fix=(f"Pull it again (`ollama pull {base.ollama_model}`)" if base.ollama_model
                          else f"Put {base.gguf} back") + "; an adapter only fits the weights it was trained on.")


def weights_source(run_dir: Path | str, model: str) -> str:
    """What to hand `load_base` to get this run's own base weights: the GGUF path, or the model's name."""
    entry = run_entry(run_dir, model)
    return entry.gguf or model
