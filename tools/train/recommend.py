"""Which base model suits this machine: the best writer that fits in memory and trains a first dataset in time.

The guide's base is phi-4-mini. It needs about 16 GB to train on a CPU and, on a small CPU, hours for a
first run; a smaller base that finishes in under an hour teaches the same lesson (does my data work?)
the same afternoon. Memory comes from the training estimate; time from a rough rate of arithmetic per
second, which is enough to tell minutes from hours.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tools.models.catalog import CATALOG, model_shape
from tools.train.memory import RUNTIME_MB_CPU, lora_params, memory_parts, total_mb
from tools.train.timing import CHECKPOINT_SLOWDOWN, machine_cores, tokens_per_second
from tools.units import human_duration

PREFERENCE = ("phi-4-mini", "qwen2.5-3b", "qwen2.5-1.5b", "qwen2.5-0.5b")
"""Best writer first. All open to download without an account (Llama and Gemma ask for a licence first)."""

FIRST_RUN_TOKENS = 50 * 3 * 350
"""A first dataset as the guide describes it: 50 examples, 3 epochs, about 350 tokens each."""
MAX_FIRST_RUN_S = 3600.0
"""Longer than this for a first run, and the next smaller base is recommended instead."""
STEP_TOKENS = 4 * 400
"""A typical packed step: the balanced preset's batch of 4 examples of ~400 tokens."""


@dataclass
class Recommendation:
    """A base model for this machine, and why, in plain words."""

    model: str
    reason: str
    memory_mb: float
    first_run_s: float
    passed_over: list[str] = field(default_factory=list)
    """One plain sentence per better model that was not picked, with the reason."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def training_memory_mb(model: str, *, cuda: bool, checkpointing: bool = False) -> float:
    """Peak memory of a typical step of `model`, as the training estimate computes it."""
    shape = model_shape(model)
    lora = lora_params(shape, r=16)
    parts = memory_parts(params=shape.params_b * 1e9, hidden=shape.hidden, layers=shape.layers, vocab=shape.vocab,
                         lora=int(lora), batch_tokens=STEP_TOKENS, chunk=1024, weight_bytes=2 if cuda else 4,
                         act_bytes=2 if cuda else 4, grad_ckpt=checkpointing, intermediate=shape.intermediate,
                         runtime_mb=0.0 if cuda else RUNTIME_MB_CPU)
    return total_mb(parts)


def recommend_base(*, cuda: bool, memory_mb: float, cores: int, task: str = "generation") -> Recommendation:
    """The first model in PREFERENCE that fits in 90 % of `memory_mb` and trains a first dataset within the hour.

    When none is fast enough, the fastest that fits; classifiers and entity taggers get the built-in MiniLM.
    """
    if task in ("classification", "entity_extraction"):
        return Recommendation("minilm", "labels and entities are learned by the built-in MiniLM encoder: small, "
                                        "already on this machine, and quick to train", 0.0, 0.0)
    where = "this GPU" if cuda else "this computer's CPU"
    budget = 0.9 * memory_mb
    passed: list[str] = []
    fitting: list[tuple[str, float, float]] = []
    for key in PREFERENCE:
        seconds = FIRST_RUN_TOKENS / tokens_per_second(CATALOG[key].params_b, cuda=cuda, cores=cores)
        need, saver = training_memory_mb(key, cuda=cuda), ""
        if need > budget:
            # gradient checkpointing (switched on by itself when needed) trades a third more time for memory
            need, seconds = training_memory_mb(key, cuda=cuda, checkpointing=True), seconds * CHECKPOINT_SLOWDOWN
            saver = " with gradient checkpointing"
        if need > budget:
            passed.append(f"{key} needs about {need / 1024:.0f} GB to train; {where} has {memory_mb / 1024:.0f} GB")
            continue
        fitting.append((key, need, seconds))
        if seconds <= MAX_FIRST_RUN_S:
            reason = (f"it fits{saver} ({need / 1024:.1f} GB of {memory_mb / 1024:.0f} GB) and a first run of about "
                      f"50 examples takes {human_duration(seconds)} on {where}")
            return Recommendation(key, reason, need, seconds, passed)
        passed.append(f"{key} would take {human_duration(seconds)} for a first run on {where}")
    if fitting:
        key, need, seconds = min(fitting, key=lambda f: f[2])
        reason = f"it is the quickest that fits: a first run takes {human_duration(seconds)} on {where}"
        return Recommendation(key, reason, need, seconds, passed)
    return Recommendation("tiny-random", "no real base model fits in this machine's memory; tiny-random lets you try "
                                         "every step of the workflow", 0.0, 0.0, passed)


def for_this_machine(task: str = "generation") -> Recommendation:
    """recommend_base with this machine's GPU (or RAM) and cores."""
    import psutil
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        memory_mb = torch.cuda.get_device_properties(0).total_memory / 2**20
    else:
        memory_mb = psutil.virtual_memory().total / 2**20
    return recommend_base(cuda=cuda, memory_mb=memory_mb, cores=machine_cores(), task=task)
