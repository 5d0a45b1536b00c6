"""How long a run takes on this machine: the speed model (rough rates until the machine is measured), the run's
time part by part, and this machine's measured figures cached per model, batch shape and machine."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.fileio import atomic_write_json
from tools.models.catalog import model_shape
from tools.settings import get_settings
from tools.train.memory import step_tokens

if TYPE_CHECKING:
    from tools.train.config import TrainConfig

STEP_OVERHEAD_S = 0.02
"""Per optimizer step, whatever the model: Python, the optimizer, the data (what dominates a tiny model)."""

CPU_FLOPS_PER_CORE = 40e9
GPU_FLOPS = 100e12
"""Sustained arithmetic for LoRA training, used only until this machine is measured (rough: a quarter to a
half of the hardware's peak)."""
CHECKPOINT_SLOWDOWN = 1.33
"""Recomputing every layer's activations costs about a third more time."""
ROUGH_STARTUP_S = 10.0
"""A fresh process importing Python, torch, transformers and peft, until this machine is measured."""
ROUGH_LOAD_MB_PER_S = 200.0
"""Reading and placing a base model's weights, until this machine is measured."""
EVAL_COST = 1 / 3
"""A validation token costs the forward pass only: about a third of a training token."""
CALIBRATION_STEPS = 4
"""Optimizer steps timed on the actual model and data (the first pays one-off costs and is counted apart)."""


def machine_cores() -> int:
    """Physical CPU cores (hyper-threads add little to training arithmetic)."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def tokens_per_second(params_b: float, *, cuda: bool, cores: int) -> float:
    """Rough LoRA training speed: forward and input-gradient passes cost about 4 × parameters per token."""
    flops = GPU_FLOPS if cuda else CPU_FLOPS_PER_CORE * max(1, cores)
    return flops / (4 * params_b * 1e9)


@dataclass(frozen=True)
class Calibration:
    """How fast this machine runs one model in one batch shape: measured once, cached in MTW_HOME."""

    startup_s: float
    """A fresh process until it starts reading the data: Python, torch, transformers, peft."""
    data_s_per_example: float
    """Reading and checking the dataset, per example."""
    load_s: float
    """Loading the base model and its tokenizer and adding the LoRA layers."""
    tokenize_s_per_example: float
    first_step_extra_s: float
    """What the first step costs beyond the others: allocations, and compilation when on."""
    step_s_per_token: float
    """A training step's time per token it computes (padding included), over the steps after the first."""
    save_s: float
    """Writing the adapter (or a checkpoint)."""
    measured: bool = True
    """False for the rough figures used before this machine has run the model."""


def rough_calibration(cfg: TrainConfig, params_b: float, cuda: bool, checkpointing: bool) -> Calibration:
    """Figures from the arithmetic a step needs at a rough sustained rate: enough to tell seconds from hours."""
    rate = tokens_per_second(params_b, cuda=cuda, cores=machine_cores())
    weights_mb = params_b * 1e9 * (2 if cuda else 4) / 2**20
    per_token = (1 / rate) * (CHECKPOINT_SLOWDOWN if checkpointing else 1.0)
    step_tokens_guess = cfg.batch_size * 256
    return Calibration(startup_s=ROUGH_STARTUP_S, data_s_per_example=0.002,
                       load_s=1.0 + weights_mb / ROUGH_LOAD_MB_PER_S, tokenize_s_per_example=0.001,
                       first_step_extra_s=1.0, step_s_per_token=per_token + STEP_OVERHEAD_S / step_tokens_guess,
                       save_s=0.5, measured=False)


@dataclass(frozen=True)
class RunTime:
    """Where a run's wall time goes, in seconds, from the process start to the saved adapter."""

    startup: float
    data: float
    load: float
    tokenize: float
    steps: float
    evaluation: float
    saving: float
    n_steps: int = 0
    """Optimizer steps the run takes (not a time)."""

    @property
    def total(self) -> float:
        """The whole run as the user waits for it."""
        return self.startup + self.data + self.load + self.tokenize + self.steps + self.evaluation + self.saving


def run_time(cfg: TrainConfig, lengths: list[int], calib: Calibration, *, cuda: bool, world: int = 1,
             since_start: float | None = None) -> RunTime:
    """The whole run's time on this machine, part by part (pure arithmetic over the engine's own batch plan).

    `since_start`: seconds this process has already run (the estimate made inside the run's own
    process); else a fresh process's start-up is counted.
    """
    from tools.train.planning import micro_batch_tokens

    n = len(lengths)
    n_val = max(1, round(n * cfg.val_share)) if cfg.val_share > 0 and n >= 5 else 0
    # the engine holds out a seeded random share; the estimate holds out the same number of examples
    train_lengths, val_lengths = lengths[n_val:], lengths[:n_val]
    micro = micro_batch_tokens(cfg, train_lengths, cuda, world)
    per_step = cfg.grad_accum * world
    steps = cfg.max_steps or math.ceil(len(micro) / per_step)
    # the processes of a multi-process run each train their share of every step at the same time
    step_s = sum(micro) / world * calib.step_s_per_token + calib.first_step_extra_s
    evals = len({s for s in range(1, steps + 1) if s % cfg.eval_every == 0 or s == steps}) if n_val else 0
    val_tokens = sum(min(v, cfg.context) for v in val_lengths)
    checkpoints = steps // cfg.checkpoint_every
    startup = calib.startup_s if since_start is None else since_start
    if world > 1:
        startup += calib.startup_s  # the worker processes start after this one
    return RunTime(startup=startup, data=calib.data_s_per_example * n, load=calib.load_s,
                   tokenize=calib.tokenize_s_per_example * n, steps=step_s,
                   evaluation=evals * val_tokens * calib.step_s_per_token * EVAL_COST,
                   saving=(checkpoints + 1) * calib.save_s, n_steps=steps)


# ---------------------------------------------------------------- calibration, cached per model, shape and machine


def calibration_key(cfg: TrainConfig, device: str, step_tokens_: int) -> str:
    """What decides a step's speed: model, task, device, machine, LoRA size, precision, compilation, step size."""
    import platform

    import torch

    from tools.train.speed import cpu_has_bf16

    bucket = 1 << max(0, math.ceil(math.log2(max(1, step_tokens_))))
    # `auto` computes in fp32 on one CPU and in bf16 on another (for the same model): measured apart
    cpu_bf16 = [] if device.startswith("cuda") else [f"cpu_bf16={cpu_has_bf16()}"]
    parts = [cfg.model, cfg.task, device.split(":")[0], platform.node(), str(machine_cores()), torch.__version__,
             f"r{cfg.lora_r}", ",".join(cfg.lora_targets) or "all", cfg.precision, *cpu_bf16, f"4bit={cfg.four_bit}",
             f"compile={cfg.compile}", f"packing={cfg.packing}", f"ckpt={cfg.gradient_checkpointing}",
             f"tokens<={bucket}"]
    return "|".join(parts)


def _cache_path() -> Path:
    return get_settings().home / "calibration.json"


def cached_calibration(key: str) -> Calibration | None:
    """This machine's measured figures for `key`, if it has run that model in that shape before."""
    try:
        entry = json.loads(_cache_path().read_text(encoding="utf-8")).get(key)
        return Calibration(**entry) if isinstance(entry, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def store_calibration(key: str, calib: Calibration) -> None:
    """Keep the figures for the next estimate (one JSON file in MTW_HOME, written atomically)."""
    _store(key, asdict(calib))


def _store(key: str, value: Any) -> None:
    path = _cache_path()
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    cache[key] = value
    with contextlib.suppress(OSError):  # a read-only or full MTW_HOME: measured again next time, nothing lost
        atomic_write_json(path, cache)


def startup_seconds(*, measure: bool = True) -> float:
    """A fresh Python process importing what a training run imports, timed once per machine (then cached);
    without `measure`, the cached figure or a rough one."""
    import platform
    import subprocess
    import sys

    import torch

    key = f"startup|{platform.node()}|{sys.executable}|{torch.__version__}"
    try:
        cached = json.loads(_cache_path().read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError):
        cached = None
    if isinstance(cached, int | float):
        return float(cached)
    if not measure:
        return ROUGH_STARTUP_S
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import torch, transformers, peft, tools.train.sft"], check=True,
                   capture_output=True, cwd=str(Path(__file__).resolve().parents[2]))
    seconds = round(time.monotonic() - t0, 3)
    _store(key, seconds)
    return seconds


def in_run_seconds(cfg: TrainConfig, lengths: list[int], device: str, *, world: int, process_start: float) -> float:
    """The whole run's time as a run that was not given its plan's figure estimates it for itself, at its start
    event: the time already spent plus the rest, from this machine's calibration (or the rough rate)."""
    cuda = device.startswith("cuda")
    calib = cached_calibration(calibration_key(cfg, device, step_tokens(cfg, lengths, cuda)))
    if calib is None:
        calib = rough_calibration(cfg, model_shape(cfg.model).params_b, cuda, cfg.gradient_checkpointing is True)
    since = time.time() - process_start
    rest = run_time(cfg, lengths, calib, cuda=cuda, world=world, since_start=0.0)
    return round(since + rest.steps + rest.evaluation + rest.saving, 1)


def process_started() -> float:
    """When this process started (Unix seconds): where the user's wait for a run begins."""
    import psutil

    return float(psutil.Process().create_time())

