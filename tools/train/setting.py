"""Change one training setting said in words ("1 epoch", "smaller model"), checked with the config's own rules."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from tools.errors import UsageError
from tools.models.catalog import CATALOG, TINY_RANDOM, find_in_catalog, resolve
from tools.train.config import PRESETS, TrainConfig, build_config
from tools.vocabulary import DEFAULT_PRESET, PANEL, SETTINGS

LABELS: dict[str, str] = {name: s.label for name, s in SETTINGS.items()}
"""Each setting's name in sentences."""
CLASSIFIER_BASE = "minilm"


def _ladder() -> list[str]:
    """Catalog bases from smallest to largest (the built-in test model is not a step on it)."""
    return [e.key for e in sorted(CATALOG.values(), key=lambda e: e.params_b) if e.key != TINY_RANDOM]


def pick_base(wanted: str, current: str) -> str:
    """A catalog key for a named model, or the next smaller / bigger base than `current`."""
    ladder = _ladder()
    if wanted in ("smaller", "bigger"):
        entry = find_in_catalog(current)
        size = entry.params_b if entry else CATALOG["phi-4-mini"].params_b
        options = [k for k in ladder if (CATALOG[k].params_b < size if wanted == "smaller"
                                         else CATALOG[k].params_b > size)]
        if not options:
            raise UsageError(f"There is no {wanted} base model in the catalog than {current}.",
                             f"Pick one by name: {', '.join(ladder)}.")
        return options[-1] if wanted == "smaller" else options[0]
    if wanted == TINY_RANDOM:
        return TINY_RANDOM
    entry = find_in_catalog(wanted)
    if entry is not None:
        return entry.key
    if looks_like_path(wanted):
        return base_on_disk(wanted)
    try:
        # a model the user's Ollama holds (its GGUF is read for training): named the way Ollama names it
        return resolve(wanted).key
    except UsageError:
        close = difflib.get_close_matches(wanted, ladder, n=1)
        raise UsageError(f"'{wanted}' is not a base model I know, nor a model in your Ollama.",
                         (f"Did you mean {close[0]}? " if close else "") + f"Pick one of: {', '.join(ladder)}; or "
                         "give the path to a model folder or .gguf file on this machine.") from None


def looks_like_path(text: str) -> bool:
    """'/tmp/x', '~/models/m', './m', 'C:\\m' or a '.gguf' file: a place on disk, not a model's name."""
    t = text.strip()
    return t.startswith(("/", "~", "./", "../")) or t.lower().endswith(".gguf") or (len(t) > 2 and t[1] == ":")


def base_on_disk(text: str) -> str:
    """The base at a folder (with its config.json) or a .gguf file, checked now; its full path."""
    path = Path(text.strip()).expanduser()
    if not path.exists():
        raise UsageError(f"There is nothing at {path}.",
                         "Give the path of a model folder (with a config.json) or of a .gguf file on this machine.")
    entry = resolve(str(path))  # says plainly what is wrong with the folder or the file
    return entry.gguf or str(path.resolve())


def apply_settings(wanted: dict[str, Any], *, sets: dict[str, str], model: str, preset: str,
                   ) -> tuple[dict[str, str], str, str, str]:
    """The run's overrides, base and preset with `wanted` applied, and what changed in words.

    Raises UsageError with the config's own plain message when a value cannot work.
    """
    sets = dict(sets)
    said: list[str] = []
    for name, raw in wanted.items():
        value = str(raw).strip()
        if name == "base_model":
            if model == CLASSIFIER_BASE:
                raise UsageError("Classifiers and entity taggers train on the built-in MiniLM encoder.",
                                 "Keep it; change epochs, learning rate or batch size instead.")
            new = pick_base(value if looks_like_path(value) else value.lower(), model)
            said.append(f"base model {model or 'automatic'} → {new}")
            model = new
        elif name == "preset":
            if value not in PRESETS:
                raise UsageError(f"'{value}' is not a preset.", f"Use one of: {', '.join(PRESETS)}.")
            said.append(f"preset {preset or 'balanced'} → {value}")
            preset = value
            # a new preset brings its own values: forget the overrides it sets
            for key in PRESETS[value]:
                sets.pop(key, None)
        elif name in LABELS:
            before = sets.get(name)
            sets[name] = value
            said.append(f"{LABELS[name]} {before + ' → ' if before else '→ '}{value}")
        else:
            raise UsageError(f"'{name}' is not a setting I can change here.",
                             f"You can change: {', '.join(LABELS.values())}.")
    # the config's own checks, on a stand-in model and file: only the values are judged here
    build_config(TINY_RANDOM, "data.jsonl", preset=preset or None, sets=[f"{k}={v}" for k, v in sets.items()])
    return sets, model, preset, "; ".join(said)


def panel() -> list[dict[str, Any]]:
    """The settings a user may change in the chat's settings panel, each with a one-sentence explanation."""
    base = PRESETS[DEFAULT_PRESET]
    values = {"preset": list(PRESETS), "base_model": ["automatic", *_ladder(), TINY_RANDOM]}
    initial = {"preset": DEFAULT_PRESET, "base_model": "automatic", "base_path": "", "epochs": base["epochs"],
               "learning_rate": f"{base['learning_rate']:g}", "max_steps": 0, "batch_size": str(base["batch_size"]),
               "context": str(base["context"]),
               "lora_r": str(TrainConfig.model_fields["lora_r"].default)}
    return [{"id": f.id, "label": f.label, "kind": f.kind,
             **({"values": list(f.values) or values[f.id]} if f.kind == "select" else {}),
             "initial": initial[f.id], "description": f.description} for f in PANEL]


def panel_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, str]:
    """The panel values the user changed, as settings to apply ("automatic" base and 0 steps mean no change)."""
    changed: dict[str, str] = {}

    def text(value: Any) -> str:  # the panel hands an emptied text field back as None
        return "" if value is None else str(value)

    for key, value in after.items():
        if key in before and text(before[key]) != text(value):
            if (key == "base_model" and value == "automatic") or (key == "max_steps" and not value):
                continue
            if key == "base_path":
                if text(value).strip():
                    changed["base_model"] = text(value).strip()
                continue
            changed[key] = str(int(value) if isinstance(value, float) and value.is_integer() else value)
    return changed
