"""The training configuration: presets, `--set key=value` overrides, validation in plain words, run config files."""

from __future__ import annotations

import difflib
import shlex
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from tools.errors import UsageError
from tools.fileio import atomic_write_text
from tools.train.recipe import sized_recipe
from tools.vocabulary import PresetName

COMPILE_MIN_STEPS = 200
"""Compiling costs tens of seconds once; shorter runs would not earn it back."""

PRESETS: dict[str, dict[str, Any]] = {
    "documents": {"learning_rate": 1e-4, "batch_size": 2, "epochs": 5, "context": 4096},
    "communications": {"learning_rate": 3e-4, "batch_size": 8, "epochs": 3, "context": 2048},
    "balanced": {"learning_rate": 2e-4, "batch_size": 4, "epochs": 3, "context": 4096},
}
"""The guide's presets: documents (PRDs, specs), communications (emails, updates), balanced (mixed)."""

PREFERENCE_DEFAULTS: dict[str, Any] = {"learning_rate": 5e-5, "warmup_ratio": 0.1}
"""A preference round's values over any preset (--set still wins): a LoRA DPO / KTO step moves the model much
further per unit of learning rate than a supervised one, so 5e-5 rather than the presets' 1e-4 to 3e-4 (TRL's
default for full fine-tuning is 1e-6)."""


class TrainConfig(BaseModel):
    """Everything that decides a training run; saved as RUN_DIR/config.yaml."""

    model_config = ConfigDict(extra="forbid")

    model: str
    """Base model: catalog key, Hugging Face id, local folder, or `tiny-random`."""
    data: str
    """The dataset file."""
    task: Literal["causal", "classification", "token"] = "causal"
    """causal = text generation; classification = one label per text; token = a tag per word (entities)."""
    labels: list[str] = []
    """Label names of a classifier, in id order (filled from the dataset when empty)."""
    preset: PresetName | None = None
    """The preset the values started from."""
    method: Literal["sft", "dpo", "kto"] = "sft"
    """sft = learn from examples; dpo = learn from pairs of answers, one judged better (Direct Preference
    Optimization); kto = learn from single answers rated good or bad (Kahneman-Tversky Optimization)."""
    from_run: str | None = None
    """A run folder whose adapter this run starts from (and whose base model and LoRA settings it keeps); its
    adapter, frozen, is also the reference a preference round measures its changes against."""
    beta: float = 0.1
    """Preference rounds: how close the model stays to where it started (higher = smaller, safer changes)."""
    lora_r: int = 16
    """LoRA rank: size of the learned update; higher learns more and needs more memory."""
    lora_alpha: int = 32
    """LoRA scaling; usually twice the rank."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA path, against overfitting."""
    lora_targets: list[str] = []
    """Modules LoRA adapts; empty = the model's default from the catalog."""
    learning_rate: float = 2e-4
    """Step size: 1e-4 careful / small data, 2e-4 default, 5e-4 fast with a risk of overfitting."""
    batch_size: int = 4
    """Examples per step (1-2 on low memory, 8-16 with more)."""
    grad_accum: int = 1
    """Steps whose gradients are summed before one update (a larger batch without more memory)."""
    epochs: float = 3
    """Passes over the training set."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides epochs)."""
    min_steps: int = 0
    """At least this many optimizer steps: a small dataset is passed over again until they are made (0 = whole
    epochs only). Set for small bases by the sized recipe (tools/train/recipe.py)."""
    context: int = 4096
    """Longest example in tokens; longer ones are cut."""
    warmup_ratio: float = 0.05
    """Share of the steps over which the learning rate ramps up from zero."""
    weight_decay: float = 0.0
    """L2 pull of the LoRA weights towards zero."""
    max_grad_norm: float = 1.0
    """Gradient clipping threshold."""
    min_examples: int = 10
    """Fewer usable examples than this stop the run before it starts; lower it to train on a handful anyway."""
    val_share: float = 0.1
    """Share of the examples held out for validation."""
    eval_every: int = 50
    """Validate every N optimizer steps (and at the end)."""
    checkpoint_every: int = 50
    """Save a resumable checkpoint every N optimizer steps."""
    seed: int = 42
    """Seed for the split, the data order and the LoRA initialisation."""
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """auto = bf16 on a capable GPU, and on a CPU with bf16 arithmetic (AMX or AVX512-BF16: autocast over fp32
    weights); fp32 otherwise."""
    four_bit: bool = False
    """Load the base in 4 bits (QLoRA, CUDA only): a quarter of the memory for the frozen weights."""
    gradient_checkpointing: bool | Literal["auto"] = "auto"
    """Recompute activations in the backward pass: less memory, about 30% slower on the steps that use it.
    auto = only on the steps whose memory estimate would not fit in memory_budget_gb."""
    compile: bool | Literal["auto"] = "auto"
    """torch.compile each decoder layer: faster steps after a one-off compilation of tens of seconds.
    auto = on a GPU, for runs of COMPILE_MIN_STEPS optimizer steps or more."""
    row_multiple: int | None = None
    """Round packed rows up to a multiple of this many tokens (padding that teaches nothing), so a GPU reuses
    its attention plans and compiled kernels across steps; None = 512 on a GPU, 0 (off) on a CPU."""
    memory_budget_gb: float | None = None
    """Memory this run may use; automatic gradient checkpointing keeps each step's estimate under it.
    None = 90% of the GPU's memory, or of the RAM free when training starts."""
    packing: bool = True
    """Pack several short examples into one row instead of padding them (causal only)."""
    loss_chunk: int = 1024
    """Tokens per chunk of the output-layer loss, so the full vocabulary logits are never held at once."""
    sharding: Literal["auto", "fsdp", "none"] = "auto"
    """With several processes (--nproc): fsdp = split the frozen base's weights across them (PyTorch FSDP), for
    a base that does not fit one device; none = each holds the whole base. auto = fsdp when the memory estimate
    says a step with the whole base would not fit one process's memory."""

    @property
    def preset_learning_rate(self) -> float:
        """The learning rate of the run's preset (the default one without a preset), before any sizing."""
        if self.preset:
            return float(PRESETS[self.preset]["learning_rate"])
        return float(type(self).model_fields["learning_rate"].default)


_EXPECTED = {"bool_parsing": "true or false", "bool_type": "true or false", "int_parsing": "a whole number",
             "int_type": "a whole number", "int_from_float": "a whole number", "float_parsing": "a number",
             "float_type": "a number", "none_required": "nothing (leave it out)"}


def _plain(err: ErrorDetails) -> str:
    field = ".".join(str(p) for p in err["loc"]) or "config"
    value = err.get("input")
    kind = err["type"]
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(field, TrainConfig.model_fields, n=1)
        known = ", ".join(TrainConfig.model_fields)
        hint = f" — did you mean '{close[0]}'?" if close else f" — known settings: {known}"
        return f"unknown setting '{field}'{hint}"
    if kind == "missing":
        return f"'{field}' is missing — give it (e.g. --{field} …)"
    return f"{field} = {value!r}: {err['msg'].lower()}"


def _plain_all(errors: list[ErrorDetails]) -> list[str]:
    """One sentence per setting; a setting with several kinds of value (true/false or auto) gets one, not one each."""
    by_field: dict[str, list[ErrorDetails]] = {}
    for err in errors:
        loc = err["loc"]
        if len(loc) > 1 and loc[0] in TrainConfig.model_fields and err["type"] != "extra_forbidden":
            by_field.setdefault(str(loc[0]), []).append(err)
        else:
            by_field.setdefault(f"#{len(by_field)}", []).append(err)
    out: list[str] = []
    for field, errs in by_field.items():
        if field.startswith("#") or len(errs) == 1 and len(errs[0]["loc"]) == 1:
            out += [_plain(e) for e in errs]
            continue
        options: list[str] = []
        for e in errs:
            expected = (f"{e['ctx']['expected']}" if e["type"] == "literal_error" and "ctx" in e
                        else _EXPECTED.get(e["type"], e["msg"].lower()))
            for option in expected.split(" or ") if expected == "true or false" else [expected]:
                if option not in options:
                    options.append(option)
        choices = ", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0]
        out.append(f"{field} = {errs[0].get('input')!r}: use {choices}")
    return out


def check_values(cfg: TrainConfig) -> list[str]:
    """Every value that is the right type but cannot work, each as one plain sentence with the fix."""
    p: list[str] = []
    for name, low in (("batch_size", 1), ("grad_accum", 1), ("lora_r", 1), ("lora_alpha", 1), ("eval_every", 1),
                      ("checkpoint_every", 1), ("loss_chunk", 16)):
        value = getattr(cfg, name)
        if value < low:
            p.append(f"{name.replace('_', ' ')} {value} — use {low} or more")
    if cfg.context < 32:
        p.append(f"context {cfg.context} — use at least 32 tokens (2048 or 4096 are usual)")
    if not 0 < cfg.learning_rate <= 1e-2:
        p.append(f"learning rate {cfg.learning_rate} — use a value between 1e-5 and 1e-2 (2e-4 is the default)")
    if cfg.epochs <= 0 and cfg.max_steps is None:
        p.append(f"epochs {cfg.epochs} — use 1 or more (3 is the default)")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        p.append(f"max steps {cfg.max_steps} — use 1 or more, or leave it out to train for whole epochs")
    if cfg.min_steps < 0:
        p.append(f"min steps {cfg.min_steps} — use 0 (whole epochs only) or more")
    if not 0 <= cfg.val_share < 0.9:
        p.append(f"validation share {cfg.val_share} — use 0 (no validation) up to 0.5; 0.1 is usual")
    if not 0 <= cfg.lora_dropout < 1:
        p.append(f"LoRA dropout {cfg.lora_dropout} — use a value from 0 to 0.5 (0.05 is usual)")
    if not 0 <= cfg.warmup_ratio < 1:
        p.append(f"warmup ratio {cfg.warmup_ratio} — use a value from 0 to 0.2")
    if cfg.weight_decay < 0:
        p.append(f"weight decay {cfg.weight_decay} — use 0 or a small positive value such as 0.01")
    if cfg.max_grad_norm <= 0:
        p.append(f"max grad norm {cfg.max_grad_norm} — use a positive value (1.0 is usual)")
    if cfg.row_multiple is not None and not 0 <= cfg.row_multiple <= 8192:
        p.append(f"row multiple {cfg.row_multiple} — use 0 (off) up to 8192; 512 is usual on a GPU")
    if cfg.memory_budget_gb is not None and cfg.memory_budget_gb <= 0:
        p.append(f"memory budget {cfg.memory_budget_gb:g} GB — use a positive number of gigabytes, or leave it out")
    if cfg.sharding == "fsdp" and cfg.four_bit:
        p.append("sharding fsdp with four_bit — a 4-bit base cannot be sharded; use one of them (four_bit=false "
                 "to shard a larger base across GPUs)")
    if cfg.method != "sft" and cfg.task != "causal":
        p.append(f"method {cfg.method} — preference rounds train text generators; {cfg.task} data trains with the "
                 "default method (leave out --method)")
    if cfg.method == "kto" and cfg.batch_size < 2:
        p.append(f"batch size {cfg.batch_size} — kto compares each answer with the others in its batch, so use 2 "
                 "or more")
    if not 0 < cfg.beta <= 10:
        p.append(f"beta {cfg.beta} — use a positive value up to 10 (0.1 is usual)")
    if cfg.task == "causal" and cfg.labels:
        p.append("labels are only for classifiers — drop them or set task=classification")
    return p


def parse_sets(pairs: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Turn `key=value` strings into overrides (YAML scalars; commas make lists); collect malformed ones."""
    out: dict[str, Any] = {}
    problems: list[str] = []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            problems.append(f"--set '{pair}' is not key=value — write it like --set learning_rate=1e-4")
            continue
        if key in ("labels", "lora_targets"):
            out[key] = [v.strip() for v in raw.split(",") if v.strip()]
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        out[key] = value
    return out, problems


def build_config(model: str, data: str, *, preset: str | None = None, sets: list[str] | None = None,
                 max_steps: int | None = None, **fields: Any) -> TrainConfig:
    """Defaults ← preset ← explicit fields ← `--set` overrides; raise one UsageError listing every problem."""
    problems: list[str] = []
    values: dict[str, Any] = {"model": model, "data": data}
    if preset is not None:
        if preset not in PRESETS:
            problems.append(f"preset '{preset}' — use one of: {', '.join(PRESETS)}")
        else:
            values.update(PRESETS[preset], preset=preset)
    if fields.get("method", "sft") != "sft":
        values.update(PREFERENCE_DEFAULTS)
    values.update(fields)
    if max_steps is not None:
        values["max_steps"] = max_steps
    overrides, bad = parse_sets(sets or [])
    problems += bad
    values.update(overrides)
    # the presets are set for a 3.8B base: a smaller one gets larger steps and enough of them, unless the user chose
    chosen = {*fields, *overrides, *(["max_steps"] if max_steps is not None else [])}
    values.update(sized_recipe(values, chosen, default_learning_rate=TrainConfig.model_fields["learning_rate"].default))
    cfg: TrainConfig | None = None
    try:
        cfg = TrainConfig(**values)
    except ValidationError as exc:
        problems += _plain_all(exc.errors())
    if cfg is not None:
        problems += check_values(cfg)
    if problems or cfg is None:
        raise UsageError("The training settings have problems:\n" + "\n".join(f"  - {p}" for p in problems),
                         fix="Fix the values above (for example --set batch_size=2) and run again.", code="bad_config")
    return cfg


def reproduce_command(cfg: TrainConfig, run_dir: Path | str) -> str:
    """The `mtw train …` line that rebuilds this exact config."""
    parts = ["mtw", "train", "--data", cfg.data, "--model", cfg.model, "--out", str(run_dir)]
    base: dict[str, Any] = {}
    if cfg.method != "sft":
        parts += ["--method", cfg.method]
    if cfg.from_run:
        parts += ["--from-run", cfg.from_run]
    if cfg.preset:
        parts += ["--preset", cfg.preset]
        base = dict(PRESETS[cfg.preset])
    if cfg.method != "sft":
        base.update(PREFERENCE_DEFAULTS)
    defaults = TrainConfig(model=cfg.model, data=cfg.data, **base)
    for name in TrainConfig.model_fields:
        if name in ("model", "data", "preset", "method", "from_run"):
            continue
        value = getattr(cfg, name)
        if value == getattr(defaults, name):
            continue
        if name == "max_steps":
            parts += ["--max-steps", str(value)]
            continue
        text = ",".join(value) if isinstance(value, list) else str(value).lower() if isinstance(value, bool) else value
        parts += ["--set", f"{name}={text}"]
    return shlex.join(str(p) for p in parts)


def save_run_config(run_dir: Path | str, cfg: TrainConfig, command: str | None = None) -> Path:
    """Write RUN_DIR/config.yaml; its first line is a `# mtw train …` comment that reproduces the run."""
    path = Path(run_dir) / "config.yaml"
    command = command or reproduce_command(cfg, run_dir)
    body = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    atomic_write_text(path, f"# {command}\n{body}")
    return path


def load_run_config(run_dir: Path | str) -> TrainConfig:
    """Read RUN_DIR/config.yaml back into a TrainConfig (plain error if it is missing or edited wrongly)."""
    path = Path(run_dir) / "config.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise UsageError(f"{path} is missing: this folder is not a training run.",
                         fix="Point at the folder given as --out to `mtw train`.") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML: {exc}.", fix="Undo the manual edit or re-run training.") from exc
    try:
        return TrainConfig(**raw)
    except ValidationError as exc:
        problems = "; ".join(_plain_all(exc.errors()))
        raise UsageError(f"{path} has problems: {problems}.", fix="Correct those fields in config.yaml.") from exc
