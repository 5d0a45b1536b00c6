"""The training recipe sized to the base model.

The guide's presets are set for phi-4-mini (3.8B parameters). On a small instruct model they change nothing: on
SmolLM2-135M-Instruct with the sample PM dataset, the balanced preset (learning rate 2e-4, 3 epochs = 36 steps)
left the loss almost flat (3.34 → 3.21) and the tuned model wrote the dataset's user-story format in 0 of 8
held-out prompts, like its base. The sweep in bench/recipe_sweep.py (figures in bench/README.md) found what does:

| learning rate | steps | user-story format, of 8 |
|---|---|---|
| 2e-4 (the preset) | 36 | 0 |
| 1e-3 | 36 | 0 |
| 2e-3 | 36 | 4 |
| 1e-3 | 72 | 8 |

So a base smaller than the guide's gets (a) a learning rate scaled by the square root of how much smaller it is
(the update of a rank-r adapter moves a narrower model less), capped at 5× where the sweep saw training stay
stable, and (b) at least MIN_STEPS optimizer steps: a small dataset is passed over again until the run has made
them. Whatever the user sets themselves wins: their learning rate is kept, and their epochs or step count are the
run's length.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from tools.errors import MTWError
from tools.models.catalog import TINY_RANDOM, resolve

REFERENCE_PARAMS_B = 3.8
"""phi-4-mini, the guide's base: its presets' learning rates are right for a model of this size."""
MAX_SCALE = 5.0
"""The largest multiple of a preset's learning rate, reached by models of ~0.15B parameters and below."""
MIN_STEPS = 72
"""Optimizer steps a sized run makes at least: what the sample dataset needed to learn its format on a 135M base."""


def lr_scale(params_b: float) -> float:
    """How much larger a step a base of `params_b` billion parameters needs than the guide's base (1 for ≥ 3.8B)."""
    if params_b <= 0:
        return 1.0
    return min(MAX_SCALE, max(1.0, (REFERENCE_PARAMS_B / params_b) ** 0.5))


def sized_learning_rate(learning_rate: float, params_b: float) -> float:
    """The preset's learning rate for a base of this size, rounded to two significant digits."""
    return float(f"{learning_rate * lr_scale(params_b):.2g}")


def base_size_b(model: str) -> float | None:
    """The base's parameters in billions (catalog, folder config or GGUF), or None when it cannot be told without
    asking anything (an unknown name, a model only in Ollama) or is the workflow's tiny-random."""
    if model.strip() == TINY_RANDOM:
        return None  # built to show the workflow, not to learn; its runs choose their own rate
    try:
        return resolve(model, ask_ollama=False).params_b or None
    except (MTWError, OSError, ValueError):
        return None


def sized_recipe(values: dict[str, Any], chosen: Collection[str] = (), *,
                 default_learning_rate: float) -> dict[str, Any]:
    """The settings to change in `values` (the preset + the user's own) for the base's size; `chosen` names
    the settings the user gave, which are never changed; `default_learning_rate` is the rate when `values` sets
    none. Empty for a generator of the guide's size or larger, a classifier, a preference round, or tiny-random."""
    if values.get("method", "sft") != "sft" or values.get("task", "causal") != "causal":
        return {}
    size = base_size_b(str(values.get("model", "")))
    if size is None or lr_scale(size) == 1.0:
        return {}
    out: dict[str, Any] = {}
    if "learning_rate" not in chosen:
        lr = float(values.get("learning_rate", default_learning_rate))
        out["learning_rate"] = sized_learning_rate(lr, size)
    if not {"epochs", "max_steps", "min_steps"} & set(chosen) and not values.get("max_steps"):
        out["min_steps"] = max(MIN_STEPS, int(values.get("min_steps") or 0))
    return out


def recipe_note(cfg: Any, passes: float) -> str:
    """One plain sentence on what the sized recipe changed in `cfg` ("" when it changed nothing); `passes` is how
    many times the run's plan goes over the examples (tools.train.estimate.Estimate.passes)."""
    size = base_size_b(cfg.model)
    if size is None or lr_scale(size) == 1.0 or cfg.method != "sft" or cfg.task != "causal":
        return ""
    preset_lr = cfg.preset_learning_rate
    parts = []
    if abs(cfg.learning_rate - sized_learning_rate(preset_lr, size)) < 1e-12 and cfg.learning_rate != preset_lr:
        parts.append(f"learning rate {cfg.learning_rate:g} (the preset's {preset_lr:g} × "
                     f"{cfg.learning_rate / preset_lr:.2g})")
    if cfg.min_steps and not cfg.max_steps and passes > cfg.epochs + 0.01:
        parts.append(f"at least {cfg.min_steps} steps (about {passes:.2g} passes over your examples, not "
                     f"{cfg.epochs:g})")
    if not parts:
        return ""
    return (f"Sized to a {size:.2g}B base: {' and '.join(parts)} — a model this small needs larger and more "
            f"steps than the guide's {REFERENCE_PARAMS_B:g}B one to learn your format.")
