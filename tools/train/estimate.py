"""Before training: will it fit in memory, and how long will the whole run take? A plain verdict and what to change.

The figures come from the memory model (tools/train/memory.py), the time model and this machine's measured speed
(tools/train/timing.py, tools/train/calibrate.py) over the run's own batch plan (tools/train/planning.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tools.errors import MTWError
from tools.models.catalog import load_tokenizer, model_shape
from tools.train.inputs import dataset_rows
from tools.train.memory import (
    CPU_AUTOCAST_COPY,
    OVERHEAD,
    RUNTIME_MB_CPU,
    available_mb,
    lora_params,
    memory_budget_mb,
    memory_parts,
    step_tokens,
    total_mb,
)
from tools.train.timing import (
    CHECKPOINT_SLOWDOWN,
    cached_calibration,
    calibration_key,
    rough_calibration,
    run_time,
    startup_seconds,
    store_calibration,
)
from tools.units import human_duration, human_mb

if TYPE_CHECKING:
    from tools.dataset.model import Example
    from tools.train.config import TrainConfig

@dataclass
class Estimate:
    """What a run will need and take, with a plain verdict."""

    params: int
    trainable_params: int
    memory_mb: dict[str, float]
    """weights, lora (weights + gradients + optimizer state), activations, output layer, and on a CPU the
    runtime (Python and torch themselves)."""
    total_mb: float
    available_mb: float
    device: str
    dataset_tokens: int
    examples: int
    steps: int
    seconds: float | None
    """The whole run's wall time: start-up, data, model load, tokenising, the steps, evaluation and saving."""
    measured: bool
    """True when the time comes from this machine's calibration, False when it is a rough rate."""
    fits: bool
    verdict: str
    changes: list[str] = field(default_factory=list)
    step_tokens: int = 0
    """Tokens in the largest micro-batch: the step the memory figures are for."""
    checkpointing: bool = False
    """True when gradient checkpointing is needed (or asked for) on the largest steps."""
    time_parts: dict[str, float] = field(default_factory=dict)
    passes: float = 0.0
    """How many times the run goes over the training examples (more than `epochs` when `min_steps` repeats a
    small dataset; 0 when not known)."""
    """Seconds for each part of the run (startup, data, load, tokenize, steps, evaluation, saving)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the UI."""
        return asdict(self)


# ---------------------------------------------------------------- the plan


def estimate(cfg: TrainConfig, *, device: str | None = None, measure: bool = False,
             lengths: list[int] | None = None, world: int = 1, process_start: float | None = None) -> Estimate:
    """Memory and the whole run's wall time for `cfg`.

    The time comes from this machine's calibration for the model and batch shape (cached in MTW_HOME;
    with `measure`, taken now when there is none), else from a rough rate, and says which.
    `process_start` (Unix seconds): the estimate is made inside the run's own process, which has
    already spent the time since then; else a fresh process's start-up is counted.
    """
    import torch

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    shape = model_shape(cfg.model)
    if lengths is None:
        lengths = dataset_lengths(cfg)
    cuda = dev.startswith("cuda")
    batch_tokens = step_tokens(cfg, lengths, cuda)
    n_targets = len(cfg.lora_targets) or 7
    lora = lora_params(shape, cfg.lora_r, n_targets)
    weight_bytes = 0.56 if cfg.four_bit else (2 if cuda and cfg.precision != "fp32" else 4)
    if not cuda and cfg.task == "causal":
        from tools.train.speed import compute_precision

        if compute_precision(cfg.precision, dev, shape.hidden) == "bf16":
            weight_bytes *= 1 + CPU_AUTOCAST_COPY  # the bf16 copies autocast keeps for the backward pass

    def parts_for(grad_ckpt: bool) -> dict[str, float]:
        return memory_parts(params=shape.params_b * 1e9, hidden=shape.hidden, layers=shape.layers, vocab=shape.vocab,
                            lora=int(lora), batch_tokens=batch_tokens, chunk=cfg.loss_chunk,
                            weight_bytes=weight_bytes, act_bytes=2 if cuda else 4, grad_ckpt=grad_ckpt,
                            intermediate=shape.intermediate, runtime_mb=0.0 if cuda else RUNTIME_MB_CPU)

    free = available_mb(dev)
    budget = memory_budget_mb(cfg, dev, free)
    parts = parts_for(cfg.gradient_checkpointing is True)
    total = total_mb(parts)
    auto_ckpt = False
    if cfg.gradient_checkpointing == "auto" and total > budget:
        # the engine switches checkpointing on for exactly the steps that would not fit without it
        with_ckpt = parts_for(True)
        if total_mb(with_ckpt) <= budget:
            parts, total, auto_ckpt = with_ckpt, total_mb(with_ckpt), True
    checkpointing = auto_ckpt or cfg.gradient_checkpointing is True
    fits = total <= budget
    key = calibration_key(cfg, dev, batch_tokens)
    calib = cached_calibration(key)
    if calib is None and measure and fits and lengths:
        from tools.train.calibrate import calibrate  # loads the model: torch and transformers

        try:
            calib = calibrate(cfg, dev, startup=process_start is None)
            store_calibration(key, calib)
        except MTWError:
            pass  # bad data or a missing model: the run itself stops on it first, in plain words
    if calib is None:
        calib = rough_calibration(cfg, shape.params_b, cuda, checkpointing)
    elif process_start is None:
        # a plan made before the run's process exists counts a fresh start-up (measured once per machine)
        calib = replace(calib, startup_s=startup_seconds(measure=measure))
    if auto_ckpt and calib.measured:
        calib = replace(calib, step_s_per_token=calib.step_s_per_token * CHECKPOINT_SLOWDOWN)
    since = None if process_start is None else time.time() - process_start
    parts_s = run_time(cfg, lengths, calib, cuda=cuda, world=world, since_start=since)
    seconds = parts_s.total
    where = "on the GPU" if cuda else "in RAM"
    time_text = human_duration(seconds) + (" in all, start-up to saved adapter" if calib.measured
                                           else " (rough: this machine's measured speed will replace it)")
    room = (f"the {human_mb(budget)} budget" if cfg.memory_budget_gb
            else f"only {human_mb(free)} is free {where}")
    if fits:
        verdict = f"fits in {human_mb(total)} {where} at batch {cfg.batch_size}"
        if auto_ckpt:
            verdict += " with gradient checkpointing on the longest steps (switched on by itself; ~30% slower there)"
        verdict += f"; {time_text}"
    else:
        verdict = f"needs about {human_mb(total)} but {room}; it would run out of memory"
    changes = _changes(cfg, parts, budget, fits, cuda)
    passes = 0.0
    if cfg.task == "causal" and lengths:
        from tools.train.planning import plan_batches

        plan, _steps, per_epoch = plan_batches(lengths, cfg, world)
        passes = round(len(plan) / max(1, per_epoch), 2)
    return Estimate(params=int(shape.params_b * 1e9), trainable_params=int(lora), memory_mb=parts, total_mb=total,
                    available_mb=round(free, 1), device=dev, dataset_tokens=int(sum(lengths)), examples=len(lengths),
                    steps=parts_s.n_steps, seconds=round(seconds, 1), measured=calib.measured, fits=fits,
                    verdict=verdict, changes=changes, step_tokens=batch_tokens, checkpointing=checkpointing,
                    time_parts={k: round(v, 2) for k, v in asdict(parts_s).items() if k != "n_steps"}, passes=passes)


def _changes(cfg: TrainConfig, parts: dict[str, float], budget: float, fits: bool, cuda: bool) -> list[str]:
    if fits:
        return []
    out: list[str] = []
    fixed = (parts["weights"] + parts["lora"]) * OVERHEAD + parts.get("runtime", 0.0)
    act = (parts["activations"] + parts["output_layer"]) * OVERHEAD
    if fixed > budget:
        out.append("the model alone does not fit: pick a smaller base (e.g. qwen2.5-0.5b or llama-3.2-1b)"
                   + (" or load it in 4 bits (--set four_bit=true)" if cuda and not cfg.four_bit else ""))
        return out
    room = budget - fixed
    batch = max(1, int(cfg.batch_size * room / max(act, 1e-9)))
    if batch < cfg.batch_size:
        out.append(f"lower the batch size to {batch} (--set batch_size={batch}) and raise grad_accum to keep the "
                   f"effective batch (--set grad_accum={math.ceil(cfg.batch_size / batch)})")
    if cfg.context > 2048:
        out.append("shorten the context to 2048 tokens (--set context=2048)")
    if cfg.gradient_checkpointing is False:
        out.append("let gradient checkpointing switch on where needed (--set gradient_checkpointing=auto): "
                   "less memory, ~30% slower on those steps")
    out.append("close other programs to free memory")
    return out


def dataset_lengths(cfg: TrainConfig, rows: list[Example] | None = None) -> list[int]:
    """Token counts of the dataset's examples (the model's tokenizer if available, else ~4 characters a token);
    `rows`: the dataset's, when already read."""
    if rows is None:
        rows = dataset_rows(cfg.data).examples
    try:
        if cfg.task == "causal":
            tok = load_tokenizer(cfg.model)
        else:
            from transformers import AutoTokenizer

            from tools.train.modeling import encoder_source

            tok = AutoTokenizer.from_pretrained(encoder_source(cfg.model), local_files_only=True)
    except Exception:  # no tokenizer offline (or an encoder name): fall back to the character estimate
        return [max(1, len(r.all_text()) // 4) for r in rows]
    return [len(tok(r.all_text(), add_special_tokens=False)["input_ids"]) for r in rows]
