"""How much memory a LoRA step needs: the parts of a run's peak (weights, adapter, activations, output layer) and
the budget a step may use. Pure arithmetic over the model's shape, shared by the plan and the engine's per-step
gradient checkpointing."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.models.catalog import ModelShape
    from tools.train.config import TrainConfig


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


CPU_AUTOCAST_COPY = 0.5
"""Under bf16 autocast on a CPU each frozen fp32 weight is cast to bf16 for its matrix product, and that copy
is kept for the backward pass: half as many bytes again as the weights (measured: +0.5× of a 384M model's
fp32 weights, whatever the step's length)."""


def step_memory(model: Any, *, chunk: int | None, device: str,
                autocast: bool = False) -> Callable[[int, int], float]:
    """For an already loaded (LoRA) model: the estimated peak in MB of a step of `tokens` tokens when
    every `every_n`-th layer is checkpointed (0 = none).

    What the engine asks, step by step, to recompute only as many layers as a step needs to fit.
    Weights are counted at their real size in memory (4-bit ones included), plus their bf16 copies under
    `autocast` on a CPU.
    """
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base.config, "text_config", base.config)
    from tools.train.sharding import local_bytes

    # a sharded base counts only this process's share
    frozen = sum(local_bytes(p) for p in model.parameters() if not p.requires_grad)
    lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cuda = device.startswith("cuda")
    act = 2 if cuda and getattr(base, "dtype", None) in (torch.bfloat16, torch.float16) else 4
    if autocast and not cuda:
        frozen = int(frozen * (1 + CPU_AUTOCAST_COPY))

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

