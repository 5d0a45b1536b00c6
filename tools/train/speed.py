"""How a run trains fast on its device: the config's `auto` speed settings made concrete, and
gradient checkpointing switched per step from the memory estimate."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import asdict, dataclass
from typing import Any

import torch

from tools.errors import UsageError
from tools.train.config import COMPILE_MIN_STEPS, TrainConfig


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
    """bf16 autocast on the GPU: the LoRA matrices (kept in fp32) multiply in bf16 like the base."""
    fused_adamw: bool
    """One fused kernel for the optimizer step (CUDA)."""

    def as_event(self) -> dict[str, Any]:
        """For the start event."""
        return asdict(self) | {"memory_budget_mb": round(self.memory_budget_mb, 1)}


def speed_settings(cfg: TrainConfig, device: str, total_steps: int, dtype: torch.dtype) -> Speed:
    """Resolve the speed settings for this device and run length (plain error for what cannot work here)."""
    from tools.train.estimate import memory_budget_mb, row_multiple

    cuda = device.startswith("cuda")
    if cfg.compile == "auto":
        compile_layers = cuda and total_steps >= COMPILE_MIN_STEPS
    else:
        compile_layers = cfg.compile
        if compile_layers and not cuda and shutil.which("cc") is None and shutil.which("gcc") is None:
            raise UsageError("compile=true on a CPU needs a C compiler (gcc), and none was found.",
                             fix="Install gcc (e.g. `apt-get install gcc`) or use --set compile=auto.")
    return Speed(compile=compile_layers, row_multiple=row_multiple(cfg, cuda) if cfg.packing else 0,
                 checkpointing=cfg.gradient_checkpointing, memory_budget_mb=memory_budget_mb(cfg, device),
                 autocast=cuda and dtype == torch.bfloat16, fused_adamw=cuda)


def precision(speed: Speed | None) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast when the speed settings ask for it, else nothing."""
    if speed is not None and speed.autocast:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class AutoCheckpointing:
    """Gradient checkpointing only where it is needed, and only as much as needed.

    Before each step: if its memory estimate is over the budget, recompute every n-th layer with the
    largest n that fits (every layer when nothing less does); otherwise recompute nothing.
    Recomputing costs about a third of a layer's forward and backward time, so a run whose steps all
    fit never pays it, and one long example no longer slows every step of the run.
    """

    def __init__(self, model: Any, speed: Speed, chunk: int, device: str) -> None:
        from tools.train.estimate import step_memory

        self.speed = speed
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.base = base
        self.layers = int(getattr(base.config, "text_config", base.config).num_hidden_layers)
        self.every_n = 1 if speed.checkpointing is True else 0
        self.need = step_memory(model, chunk=chunk, device=device) if speed.checkpointing == "auto" else None
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
        from tools.train.estimate import checkpointed_layers

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
