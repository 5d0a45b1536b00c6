"""How a run trains fast on its device: the config's `auto` speed settings made concrete, and
gradient checkpointing switched per step from the memory estimate."""

from __future__ import annotations

import contextlib
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from tools.errors import UsageError
from tools.train.config import COMPILE_MIN_STEPS, TrainConfig
from tools.train.memory import checkpointed_layers, memory_budget_mb, row_multiple, step_memory


@dataclass
class Speed:
    """How this run trains fast on its device: the config's `auto` values made concrete."""

    compile: bool
    """Decoder layers compiled with torch.compile."""
    row_multiple: int
    """Packed rows rounded up to a multiple of this many tokens (0 = not at all)."""
    checkpointing: bool | str
    """True, False, or "auto": per step, on when that step's memory estimate exceeds the budget."""
    memory_budget_mb: float
    """What a step may use before automatic checkpointing switches on."""
    autocast: bool
    """bf16 autocast, on a GPU or on a CPU with bf16 arithmetic: the matrix products run in bf16 while the
    LoRA matrices and the optimizer state stay fp32."""
    fused_adamw: bool
    """One fused kernel for the optimizer step (CUDA)."""
    precision: str = "fp32"
    """What the matrix products compute in: bf16, fp16 or fp32 (the config's `auto` made concrete)."""

    def as_event(self) -> dict[str, Any]:
        """For the start event."""
        return asdict(self) | {"memory_budget_mb": round(self.memory_budget_mb, 1)}


BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
"""/proc/cpuinfo flags of a CPU that multiplies bf16 in hardware (Intel AMX, AVX512-BF16 on Intel and AMD)."""


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux lists them in `cpuinfo` (none elsewhere, or when they cannot be read)."""
    if not sys.platform.startswith("linux"):
        return frozenset()
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def cpu_has_bf16() -> bool:
    """True on a CPU with bf16 arithmetic, where bf16 autocast trains faster than fp32."""
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


BF16_MIN_HIDDEN = 256
"""Below this hidden size `auto` stays fp32 even on a CPU with bf16 arithmetic: matrix products that small pay
more for the casts than bf16 saves (bench/README.md: the 128-wide shape trains at 0.6× in bf16, the 512-wide
one and SmolLM2-135M's 576 at 1.5×), and a tiny model memorises less well in bf16."""


def hidden_size(model: Any) -> int:
    """The width of a (LoRA-wrapped) language model's hidden states."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return int(getattr(base.config, "text_config", base.config).hidden_size)


def compute_precision(precision: str, device: str, hidden: int) -> str:
    """What a run's matrix products compute in on `device` for the config's `precision` and a model `hidden`
    wide: bf16, fp16 or fp32.

    A CPU runs bf16 as autocast over fp32 weights, for `auto` only where it has bf16 arithmetic and the model is
    wide enough to gain from it; a precision this device cannot run is refused when the model loads
    (`pick_dtype`), not here.
    """
    if device.startswith("cuda"):
        if precision != "auto":
            return precision
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "auto":
        return "bf16" if cpu_has_bf16() and hidden >= BF16_MIN_HIDDEN else "fp32"
    return precision


def autocast_on(precision: str, device: str, model: Any) -> bool:
    """Whether a causal LM's forward and backward run under bf16 autocast, for the config's precision: on a GPU
    when the base's weights are bf16, on a CPU (fp32 weights) when `compute_precision` says bf16."""
    if device.startswith("cuda"):
        return next(iter(model.parameters())).dtype == torch.bfloat16
    return compute_precision(precision, device, hidden_size(model)) == "bf16"


def speed_settings(cfg: TrainConfig, device: str, total_steps: int, model: Any) -> Speed:
    """Resolve the speed settings for this device, run length and (LoRA-wrapped) model (plain error for what
    cannot work here)."""
    cuda = device.startswith("cuda")
    if cfg.compile == "auto":
        compile_layers = cuda and total_steps >= COMPILE_MIN_STEPS
    else:
        compile_layers = cfg.compile
        if compile_layers and not cuda and shutil.which("cc") is None and shutil.which("gcc") is None:
            raise UsageError("compile=true on a CPU needs a C compiler (gcc), and none was found.",
                             fix="Install gcc (e.g. `apt-get install gcc`) or use --set compile=auto.")
    autocast = autocast_on(cfg.precision, device, model)
    dtype = next(iter(model.parameters())).dtype
    return Speed(compile=compile_layers, row_multiple=row_multiple(cfg, cuda) if cfg.packing else 0,
                 checkpointing=cfg.gradient_checkpointing, memory_budget_mb=memory_budget_mb(cfg, device),
                 autocast=autocast, fused_adamw=cuda, precision="bf16" if autocast else _name(dtype))


def _name(dtype: torch.dtype) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def bf16_autocast(on: bool, device: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on `device` (cuda or cpu) when `on`, else nothing."""
    if on:
        return torch.autocast("cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def precision(speed: Speed | None, device: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast when the speed settings ask for it, else nothing."""
    return bf16_autocast(speed is not None and speed.autocast, device)


class AutoCheckpointing:
    """Gradient checkpointing only where it is needed, and only as much as needed.

    Before each step: if its memory estimate is over the budget, recompute every n-th layer with the
    largest n that fits (every layer when nothing less does); otherwise recompute nothing.
    Recomputing costs about a third of a layer's forward and backward time, so a run whose steps all
    fit never pays it, and one long example no longer slows every step of the run.
    """

    def __init__(self, model: Any, speed: Speed, chunk: int, device: str) -> None:
        self.speed = speed
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.base = base
        self.layers = int(getattr(base.config, "text_config", base.config).num_hidden_layers)
        self.every_n = 1 if speed.checkpointing is True else 0
        self.need = (step_memory(model, chunk=chunk, device=device, autocast=speed.autocast)
                     if speed.checkpointing == "auto" else None)
        self._cache: dict[int, int] = {}

    def choose(self, tokens: int) -> int:
        """every_n for a step whose largest micro-batch has `tokens` tokens (0 = no checkpointing)."""
        if self.need is None:
            return self.every_n
        if tokens not in self._cache:
            budget = self.speed.memory_budget_mb
            choice = 1
            if self.need(tokens, 0) <= budget:
                choice = 0
            else:
                choice = next((n for n in range(self.layers, 1, -1) if self.need(tokens, n) <= budget), 1)
            self._cache[tokens] = choice
        return self._cache[tokens]

    def before_step(self, tokens: int) -> int:
        """Set checkpointing for the coming step; returns how many layers it recomputes."""
        want = self.choose(tokens)
        if want != self.every_n:
            # drop the input hook a previous switch left, so hooks do not pile up over a long run
            self.base.disable_input_require_grads()
            if want:
                self.base.activation_checkpointing_enable({"use_reentrant": False}, every_n_layers=want)
            else:
                self.base.activation_checkpointing_disable()
            self.every_n = want
        return checkpointed_layers(self.layers, self.every_n)
