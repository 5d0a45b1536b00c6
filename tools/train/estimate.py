"""Before training: will it fit in memory, and how long will it take? A plain verdict and what to change."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.train.config import TrainConfig

SHAPES: dict[str, tuple[int, int, int]] = {
    "phi-4-mini": (3072, 32, 200064), "llama-3.2-1b": (2048, 16, 128256), "llama-3.2-3b": (3072, 28, 128256),
    "qwen2.5-0.5b": (896, 24, 151936), "qwen2.5-1.5b": (1536, 28, 151936), "qwen2.5-3b": (2048, 36, 151936),
    "gemma-2-2b": (2304, 26, 256000), "smollm2-360m": (960, 32, 49152), "smollm2-1.7b": (2048, 24, 49152),
    "tiny-random": (64, 2, 30524), "minilm": (384, 6, 30522),
}
"""(hidden size, layers, vocabulary) of the catalog models, so no download is needed to estimate."""

MINILM_PARAMS_B = 0.0227
ACT_BYTES_PER_TOKEN_LAYER = 34
"""Activation bytes kept per token, per layer, per unit of hidden size in 16-bit (Korthikanti et al. 2022)."""
OVERHEAD = 1.15
"""Allocator fragmentation, temporary buffers and the framework itself."""
EXAMPLES_PER_MINUTE = 30
"""The guide's slow end of typical speed; used when no warm-up could be measured."""


@dataclass
class Estimate:
    """What a run will need and take, with a plain verdict."""

    params: int
    trainable_params: int
    memory_mb: dict[str, float]
    """weights, lora (weights + gradients + optimizer state), activations, output layer."""
    total_mb: float
    available_mb: float
    device: str
    dataset_tokens: int
    examples: int
    steps: int
    seconds: float | None
    measured: bool
    """True when the time comes from a measured warm-up, False when it is the guide's rough rate."""
    fits: bool
    verdict: str
    changes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the UI."""
        return asdict(self)


def model_shape(model: str) -> tuple[int, int, int, float]:
    """(hidden, layers, vocab, params in billions) from the table, or from a local folder's config.json."""
    from tools.train.catalog import resolve

    key = model.lower()
    if key in ("minilm", "all-minilm-l6-v2"):
        h, layers, v = SHAPES["minilm"]
        return h, layers, v, MINILM_PARAMS_B
    entry = resolve(model)
    if entry.key in SHAPES:
        h, layers, v = SHAPES[entry.key]
        return h, layers, v, entry.params_b
    cfg = json.loads((Path(entry.hf_id) / "config.json").read_text(encoding="utf-8"))
    h, layers, v = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"]), int(cfg["vocab_size"])
    inter = int(cfg.get("intermediate_size") or 4 * h)
    params = layers * (4 * h * h + 3 * h * inter) + 2 * v * h
    return h, layers, v, params / 1e9


def memory_parts(*, params: float, hidden: int, layers: int, vocab: int, lora: int, batch_tokens: int, chunk: int,
                 weight_bytes: float, act_bytes: int, grad_ckpt: bool) -> dict[str, float]:
    """Memory in MB for each part of a LoRA run (pure arithmetic, unit-tested)."""
    mb = 2**20
    per_layer = ACT_BYTES_PER_TOKEN_LAYER * hidden * batch_tokens * act_bytes / 2
    activations = (hidden * batch_tokens * act_bytes * layers + per_layer) if grad_ckpt else per_layer * layers
    return {
        "weights": round(params * weight_bytes / mb, 1),
        "lora": round(lora * 4 * 4 / mb, 1),  # fp32 weights, gradients and Adam's two moments
        "activations": round(activations / mb, 1),
        "output_layer": round(min(chunk, batch_tokens) * vocab * 4 * 3 / mb, 1),
    }


def available_mb(device: str) -> float:
    """Free memory where training runs: the GPU's total memory, or the RAM available now."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_properties(0).total_memory / 2**20
    import psutil

    return psutil.virtual_memory().available / 2**20


def _gb(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return "about 1 second" if seconds < 1.5 else f"about {round(seconds)} seconds"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} minutes"
    return f"about {seconds / 3600:.1f} hours"


def estimate(cfg: TrainConfig, *, device: str | None = None, measure: bool = False,
             lengths: list[int] | None = None) -> Estimate:
    """Estimate memory and time for `cfg`; `measure` times a few real steps (loads the model)."""
    import torch

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    hidden, layers, vocab, params_b = model_shape(cfg.model)
    if lengths is None:
        lengths = dataset_lengths(cfg)
    n = max(1, len(lengths))
    mean_len = sum(lengths) / n if lengths else 256
    longest = max(lengths, default=256)
    batch_tokens = int(cfg.batch_size * (mean_len if cfg.packing and cfg.task == "causal" else longest))
    batch_tokens = min(batch_tokens, cfg.batch_size * cfg.context)
    n_targets = len(cfg.lora_targets) or 7
    lora = cfg.lora_r * layers * hidden * (18 if n_targets >= 7 else 2.5 * n_targets)
    cuda = dev.startswith("cuda")
    weight_bytes = 0.56 if cfg.four_bit else (2 if cuda and cfg.precision != "fp32" else 4)
    parts = memory_parts(params=params_b * 1e9, hidden=hidden, layers=layers, vocab=vocab, lora=int(lora),
                         batch_tokens=batch_tokens, chunk=cfg.loss_chunk, weight_bytes=weight_bytes,
                         act_bytes=2 if cuda else 4, grad_ckpt=cfg.gradient_checkpointing)
    total = sum(parts.values()) * OVERHEAD
    free = available_mb(dev)
    per_step = max(1, cfg.batch_size * cfg.grad_accum)
    steps = cfg.max_steps or math.ceil(n * (1 - cfg.val_share) / per_step * cfg.epochs)
    seconds: float | None = None
    measured = False
    if measure:
        step_s = warmup_seconds_per_step(cfg, dev, batch_tokens)
        if step_s is not None:
            seconds, measured = step_s * steps, True
    if seconds is None:
        seconds = steps * per_step / EXAMPLES_PER_MINUTE * 60
    fits = total <= free * 0.9
    where = "on the GPU" if cuda else "in RAM"
    time_text = _duration(seconds) + ("" if measured else " (rough: measured speed will replace this)")
    if fits:
        verdict = f"fits in {_gb(total)} {where} at batch {cfg.batch_size}; {time_text}"
    else:
        verdict = f"needs about {_gb(total)} but only {_gb(free)} is free {where}; it would run out of memory"
    changes = _changes(cfg, parts, free, fits, cuda)
    return Estimate(params=int(params_b * 1e9), trainable_params=int(lora), memory_mb=parts, total_mb=round(total, 1),
                    available_mb=round(free, 1), device=dev, dataset_tokens=int(sum(lengths)), examples=len(lengths),
                    steps=steps, seconds=round(seconds, 1), measured=measured, fits=fits, verdict=verdict,
                    changes=changes)


def _changes(cfg: TrainConfig, parts: dict[str, float], free: float, fits: bool, cuda: bool) -> list[str]:
    if fits:
        return []
    out: list[str] = []
    fixed = (parts["weights"] + parts["lora"]) * OVERHEAD
    act = (parts["activations"] + parts["output_layer"]) * OVERHEAD
    if fixed > free * 0.9:
        out.append("the model alone does not fit: pick a smaller base (e.g. qwen2.5-0.5b or llama-3.2-1b)"
                   + (" or load it in 4 bits (--set four_bit=true)" if cuda and not cfg.four_bit else ""))
        return out
    room = free * 0.9 - fixed
    batch = max(1, int(cfg.batch_size * room / max(act, 1e-9)))
    if batch < cfg.batch_size:
        out.append(f"lower the batch size to {batch} (--set batch_size={batch}) and raise grad_accum to keep the "
                   f"effective batch (--set grad_accum={math.ceil(cfg.batch_size / batch)})")
    if cfg.context > 2048:
        out.append("shorten the context to 2048 tokens (--set context=2048)")
    if not cfg.gradient_checkpointing:
        out.append("turn on gradient checkpointing (--set gradient_checkpointing=true): less memory, ~30% slower")
    out.append("close other programs to free memory")
    return out


def dataset_lengths(cfg: TrainConfig) -> list[int]:
    """Token counts of the dataset's examples (the model's tokenizer if available, else ~4 characters a token)."""
    from tools.dataset.readers import read_dataset

    rows = read_dataset(cfg.data).examples
    try:
        from tools.train.catalog import load_tokenizer

        tok = load_tokenizer(cfg.model)
    except Exception:  # no tokenizer offline (or an encoder name): fall back to the character estimate
        return [max(1, len(r.all_text()) // 4) for r in rows]
    return [len(tok(r.all_text(), add_special_tokens=False)["input_ids"]) for r in rows]


def warmup_seconds_per_step(cfg: TrainConfig, device: str, batch_tokens: int, steps: int = 3) -> float | None:
    """Time a few real optimizer steps on random tokens of the run's batch shape; None if the model is not here."""
    import torch

    from tools.errors import UsageError
    from tools.train.loss import lm_loss
    from tools.train.modeling import apply_lora, load_base, lora_settings

    if cfg.task != "causal":
        return None
    try:
        model, tok = load_base(cfg.model, "causal", precision=cfg.precision, device=device, four_bit=cfg.four_bit)
    except UsageError:
        return None
    model = apply_lora(model, **lora_settings(cfg))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate)
    length = max(8, batch_tokens)
    ids = torch.randint(0, len(tok), (1, length), device=device)
    batch = {"input_ids": ids, "labels": ids, "position_ids": torch.arange(length, device=device)[None]}
    timings = []
    for _ in range(steps + 1):
        t0 = time.monotonic()
        for _ in range(cfg.grad_accum):
            loss, _n = lm_loss(model, batch, cfg.loss_chunk)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        timings.append(time.monotonic() - t0)
    return sum(timings[1:]) / steps  # the first step pays one-off set-up costs
