"""Before training: will it fit in memory, and how long will it take? A plain verdict and what to change."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.train.config import TrainConfig


@dataclass(frozen=True)
class ModelShape:
    """The sizes that decide a model's training memory."""

    hidden: int
    layers: int
    vocab: int
    intermediate: int
    """Width of the MLP inside each layer (4 × hidden in the classic transformer, wider in most recent ones)."""
    params_b: float
    """Parameters, in billions."""


SHAPES: dict[str, tuple[int, int, int, int]] = {
    "phi-4-mini": (3072, 32, 200064, 8192), "llama-3.2-1b": (2048, 16, 128256, 8192),
    "llama-3.2-3b": (3072, 28, 128256, 8192), "qwen2.5-0.5b": (896, 24, 151936, 4864),
    "qwen2.5-1.5b": (1536, 28, 151936, 8960), "qwen2.5-3b": (2048, 36, 151936, 11008),
    "gemma-2-2b": (2304, 26, 256000, 9216), "smollm2-360m": (960, 32, 49152, 2560),
    "smollm2-1.7b": (2048, 24, 49152, 8192), "tiny-random": (64, 2, 30524, 128), "minilm": (384, 6, 30522, 1536),
}
"""(hidden, layers, vocabulary, MLP width) of the catalog models, so no download is needed to estimate."""

MINILM_PARAMS_B = 0.0227
ACT_PER_HIDDEN = 4.0
ACT_PER_INTERMEDIATE = 6.75
"""Activation values kept for the backward pass, per token and per layer: ACT_PER_HIDDEN × hidden +
ACT_PER_INTERMEDIATE × MLP width, each value 2 bytes on a GPU (bf16) and 4 on a CPU (fp32). LoRA on every
linear layer keeps each layer's inputs; the MLP's gate, up and product tensors dominate. Fitted to the
peaks measured on an H100 for three model shapes at 4.6k-16k tokens per step (bench/README.md): within
±10 % there."""
OUTPUT_COPIES = 1.0
"""fp32 logits of one output-layer chunk alive at the peak."""
OVERHEAD = 1.1
"""Allocator fragmentation and temporary buffers."""
RUNTIME_MB_CPU = 450.0
"""Python, torch and transformers themselves: part of the RAM a CPU run uses (a GPU's memory holds none of it)."""
STEP_OVERHEAD_S = 0.02
"""Per optimizer step, whatever the model: Python, the optimizer, the data (what dominates a tiny model)."""


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
    measured: bool
    """True when the time comes from a measured warm-up, False when it is the guide's rough rate."""
    fits: bool
    verdict: str
    changes: list[str] = field(default_factory=list)
    step_tokens: int = 0
    """Tokens in the largest micro-batch: the step the memory figures are for."""
    checkpointing: bool = False
    """True when gradient checkpointing is needed (or asked for) on the largest steps."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the UI."""
        return asdict(self)


def model_shape(model: str) -> ModelShape:
    """The model's sizes: from the table for catalog models, or from a local folder's config.json."""
    from tools.train.catalog import resolve

    key = model.lower()
    if key in ("minilm", "all-minilm-l6-v2"):
        return ModelShape(*SHAPES["minilm"], params_b=MINILM_PARAMS_B)
    entry = resolve(model)
    if entry.key in SHAPES:
        return ModelShape(*SHAPES[entry.key], params_b=entry.params_b)
    cfg = json.loads((Path(entry.hf_id) / "config.json").read_text(encoding="utf-8"))
    cfg = cfg.get("text_config", cfg)  # multimodal configs nest the language model's sizes
    h, layers, v = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"]), int(cfg["vocab_size"])
    inter = int(cfg.get("intermediate_size") or 4 * h)
    params = layers * (4 * h * h + 3 * h * inter) + 2 * v * h
    return ModelShape(h, layers, v, inter, params / 1e9)


def activation_bytes(*, hidden: int, intermediate: int, layers: int, tokens: int, act_bytes: int,
                     checkpointed: int = 0) -> float:
    """Bytes kept for the backward pass over a step of `tokens` tokens with `checkpointed` layers recomputed."""
    per_layer = (ACT_PER_HIDDEN * hidden + ACT_PER_INTERMEDIATE * intermediate) * tokens * act_bytes
    checkpointed = min(max(0, checkpointed), layers)
    if not checkpointed:
        return per_layer * layers
    # a checkpointed layer keeps only its input; one at a time is recomputed in full in the backward pass
    return (layers - checkpointed) * per_layer + checkpointed * hidden * tokens * act_bytes + per_layer


def checkpointed_layers(layers: int, every_n: int) -> int:
    """How many of `layers` layers are recomputed when every n-th one is (0 = none)."""
    return math.ceil(layers / every_n) if every_n else 0


def memory_parts(*, params: float, hidden: int, layers: int, vocab: int, lora: int, batch_tokens: int, chunk: int,
                 weight_bytes: float, act_bytes: int, grad_ckpt: bool, intermediate: int | None = None,
                 runtime_mb: float = 0.0, every_n: int = 1) -> dict[str, float]:
    """Memory in MB for each part of a LoRA run (pure arithmetic, unit-tested).

    `intermediate` is the MLP width (4 × hidden when not known); `runtime_mb` the process itself
    (Python, torch) where it shares the memory, as on a CPU; with `grad_ckpt`, every `every_n`-th
    layer is recomputed (1 = all of them).
    """
    mb = 2**20
    activations = activation_bytes(hidden=hidden, intermediate=intermediate or 4 * hidden, layers=layers,
                                   tokens=batch_tokens, act_bytes=act_bytes,
                                   checkpointed=checkpointed_layers(layers, every_n) if grad_ckpt else 0)
    parts = {
        "weights": round(params * weight_bytes / mb, 1),
        "lora": round(lora * 4 * 4 / mb, 1),  # fp32 weights, gradients and Adam's two moments
        "activations": round(activations / mb, 1),
        "output_layer": round(min(chunk, batch_tokens) * vocab * 4 * OUTPUT_COPIES / mb, 1),
    }
    if runtime_mb:
        parts["runtime"] = round(runtime_mb, 1)
    return parts


def total_mb(parts: dict[str, float]) -> float:
    """The peak the parts add up to (the runtime is measured, so it takes no overhead)."""
    runtime = parts.get("runtime", 0.0)
    return round((sum(parts.values()) - runtime) * OVERHEAD + runtime, 1)


def step_memory(model: Any, *, chunk: int | None, device: str) -> Callable[[int, int], float]:
    """For an already loaded (LoRA) model: the estimated peak in MB of a step of `tokens` tokens when
    every `every_n`-th layer is checkpointed (0 = none).

    What the engine asks, step by step, to recompute only as many layers as a step needs to fit.
    Weights are counted at their real size in memory (4-bit ones included).
    """
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base.config, "text_config", base.config)
    frozen = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cuda = device.startswith("cuda")
    act = 2 if cuda and getattr(base, "dtype", None) in (torch.bfloat16, torch.float16) else 4

    def at(tokens: int, every_n: int) -> float:
        return total_mb(memory_parts(params=frozen, hidden=config.hidden_size, layers=config.num_hidden_layers,
                                     vocab=config.vocab_size, lora=lora, batch_tokens=tokens, chunk=chunk or tokens,
                                     weight_bytes=1, act_bytes=act, grad_ckpt=every_n > 0, every_n=max(1, every_n),
                                     intermediate=getattr(config, "intermediate_size", None),
                                     runtime_mb=0.0 if cuda else RUNTIME_MB_CPU))

    return at


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


def step_tokens(cfg: TrainConfig, lengths: list[int], cuda: bool) -> int:
    """Tokens in the largest micro-batch the engine can build from examples of these lengths.

    Packed rows hold about batch_size examples of average length, never less than the longest one
    (the engine's `token_budget`), rounded up to the row multiple on a GPU; padded batches are
    batch_size × the longest example.
    """
    mean_len = sum(lengths) / len(lengths) if lengths else 256
    longest = min(max(lengths, default=256), cfg.context)
    if cfg.packing and cfg.task == "causal":
        tokens = min(cfg.context * cfg.batch_size, max(longest, math.ceil(cfg.batch_size * mean_len)))
        multiple = row_multiple(cfg, cuda)
        return -(-tokens // multiple) * multiple if multiple else tokens
    return cfg.batch_size * longest


def memory_budget_mb(cfg: TrainConfig, device: str, free_mb: float | None = None) -> float:
    """What a step may use: the config's budget, else 90 % of the memory free where training runs (`free_mb`
    when already known; the device is only asked when the config sets no budget)."""
    if cfg.memory_budget_gb:
        return cfg.memory_budget_gb * 1024
    return 0.9 * (available_mb(device) if free_mb is None else free_mb)


def lora_params(shape: ModelShape, r: int, n_targets: int = 7) -> float:
    """Trainable LoRA parameters: every linear layer (7 targets) or a few attention projections."""
    per_layer = 7.5 * shape.hidden + 3 * shape.intermediate if n_targets >= 7 else 2.5 * n_targets * shape.hidden
    return r * shape.layers * per_layer


def row_multiple(cfg: TrainConfig, cuda: bool) -> int:
    """The multiple packed rows are rounded up to: the config's, else 512 on a GPU and none on a CPU."""
    if cfg.row_multiple is not None:
        return cfg.row_multiple
    return 512 if cuda else 0


def estimate(cfg: TrainConfig, *, device: str | None = None, measure: bool = False,
             lengths: list[int] | None = None) -> Estimate:
    """Estimate memory and time for `cfg`; `measure` times a few real steps (loads the model)."""
    import torch

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    shape = model_shape(cfg.model)
    if lengths is None:
        lengths = dataset_lengths(cfg)
    n = max(1, len(lengths))
    cuda = dev.startswith("cuda")
    batch_tokens = step_tokens(cfg, lengths, cuda)
    n_targets = len(cfg.lora_targets) or 7
    lora = lora_params(shape, cfg.lora_r, n_targets)
    weight_bytes = 0.56 if cfg.four_bit else (2 if cuda and cfg.precision != "fp32" else 4)

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
    per_step = max(1, cfg.batch_size * cfg.grad_accum)
    steps = cfg.max_steps or math.ceil(n * (1 - cfg.val_share) / per_step * cfg.epochs)
    seconds: float | None = None
    measured = False
    if measure:
        step_s = warmup_seconds_per_step(cfg, dev, batch_tokens)
        if step_s is not None:
            seconds, measured = step_s * steps, True
    if seconds is None:
        checkpointing = auto_ckpt or cfg.gradient_checkpointing is True
        seconds = rough_seconds(cfg, shape.params_b, lengths, steps, cuda, checkpointing)
    fits = total <= budget
    where = "on the GPU" if cuda else "in RAM"
    time_text = _duration(seconds) + ("" if measured else " (rough: measured speed will replace this)")
    room = (f"the {_gb(budget)} budget" if cfg.memory_budget_gb
            else f"only {_gb(free)} is free {where}")
    if fits:
        verdict = f"fits in {_gb(total)} {where} at batch {cfg.batch_size}"
        if auto_ckpt:
            verdict += " with gradient checkpointing on the longest steps (switched on by itself; ~30% slower there)"
        verdict += f"; {time_text}"
    else:
        verdict = f"needs about {_gb(total)} but {room}; it would run out of memory"
    changes = _changes(cfg, parts, budget, fits, cuda)
    return Estimate(params=int(shape.params_b * 1e9), trainable_params=int(lora), memory_mb=parts, total_mb=total,
                    available_mb=round(free, 1), device=dev, dataset_tokens=int(sum(lengths)), examples=len(lengths),
                    steps=steps, seconds=round(seconds, 1), measured=measured, fits=fits, verdict=verdict,
                    changes=changes, step_tokens=batch_tokens,
                    checkpointing=auto_ckpt or cfg.gradient_checkpointing is True)


def rough_seconds(cfg: TrainConfig, params_b: float, lengths: list[int], steps: int, cuda: bool,
                  checkpointing: bool) -> float:
    """Training time from the arithmetic it needs at a rough sustained rate (tools/train/recommend.py), for when
    no warm-up was measured: enough to tell seconds from minutes from hours."""
    from tools.train.recommend import CHECKPOINT_SLOWDOWN, machine_cores, tokens_per_second

    mean = sum(lengths) / len(lengths) if lengths else 256
    tokens = steps * cfg.batch_size * cfg.grad_accum * mean
    seconds = tokens / tokens_per_second(params_b, cuda=cuda, cores=machine_cores()) + steps * STEP_OVERHEAD_S
    return seconds * (CHECKPOINT_SLOWDOWN if checkpointing else 1.0)


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


def dataset_lengths(cfg: TrainConfig) -> list[int]:
    """Token counts of the dataset's examples (the model's tokenizer if available, else ~4 characters a token)."""
    from tools.train.inputs import dataset_rows

    rows = dataset_rows(cfg.data).examples
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
