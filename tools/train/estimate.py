"""Before training: will it fit in memory, and how long will the whole run take? A plain verdict and what to change."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.units import human_duration, human_mb

if TYPE_CHECKING:
    from tools.train.catalog import ModelShape
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


# ---------------------------------------------------------------- the speed model

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


def micro_batch_tokens(cfg: TrainConfig, lengths: list[int], cuda: bool, world: int = 1) -> list[int]:
    """Tokens each micro-batch of the run computes (padding included), in the order the engine trains them.

    The same plan the engine builds from the same token counts: packed rows (rounded up to the row
    multiple on a GPU) for generators, padded batches of `batch_size` for classifiers.
    """
    if cfg.task == "causal":
        from tools.train.sft import plan_batches

        plan, _steps, _per_epoch = plan_batches(lengths, cfg, world)
        multiple = row_multiple(cfg, cuda) if cfg.packing else 0
        if cfg.packing:
            rows = [sum(min(lengths[i], cfg.context) for i in idx) for idx in plan]
            return [-(-t // multiple) * multiple if multiple else t for t in rows]
        return [len(idx) * max(min(lengths[i], cfg.context) for i in idx) for idx in plan]
    # classifiers: epoch e shuffles by seed + e and pads each batch to its longest example
    import random

    per_epoch = math.ceil(len(lengths) / cfg.batch_size)
    steps = cfg.max_steps or math.ceil(per_epoch * cfg.epochs / cfg.grad_accum)
    out: list[int] = []
    for k in range(steps * cfg.grad_accum):
        epoch, pos = divmod(k, per_epoch)
        order = list(range(len(lengths)))
        random.Random(cfg.seed + epoch).shuffle(order)
        batch = [min(lengths[i], cfg.context) for i in order[pos * cfg.batch_size: (pos + 1) * cfg.batch_size]]
        out.append(len(batch) * max(batch, default=0))
    return out


def run_time(cfg: TrainConfig, lengths: list[int], calib: Calibration, *, cuda: bool, world: int = 1,
             since_start: float | None = None) -> RunTime:
    """The whole run's time on this machine, part by part (pure arithmetic over the engine's own batch plan).

    `since_start`: seconds this process has already run (the estimate made inside the run's own
    process); else a fresh process's start-up is counted.
    """
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
    from tools.settings import get_settings

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
    from tools.fileio import atomic_write_json

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


def calibrate(cfg: TrainConfig, device: str | None = None, *, steps: int = CALIBRATION_STEPS,
              startup: bool = True) -> Calibration:
    """Measure this machine on the run's own model and data: read the data, load the model, tokenise, time
    a few real optimizer steps with the run's batch settings, save an adapter. Cached in MTW_HOME; this is
    what the plan's time is built from (the chat can run it in the background while the user reads the plan).
    `startup`: also time a fresh process's start-up (once per machine); a run's own process, which has
    already started, does without.
    """
    import tempfile

    import torch

    from tools.train.inputs import read_training_data
    from tools.train.modeling import apply_lora, load_base, lora_settings
    from tools.train.speed import autocast_on, bf16_autocast

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    causal = cfg.task == "causal"
    startup_s = startup_seconds(measure=startup)
    t0 = time.monotonic()
    data = read_training_data(cfg.data, model=cfg.model if causal else None, context=cfg.context,
                              val_share=cfg.val_share, seed=cfg.seed, check_model=causal,
                              min_examples=cfg.min_examples)
    n_rows = max(1, len(data.train) + len(data.validation))
    data_s = (time.monotonic() - t0) / n_rows
    t0 = time.monotonic()
    labels = cfg.labels or _labels(data.train, cfg.task)
    model, tok = load_base(cfg.model, cfg.task, labels=labels, precision=cfg.precision, device=dev,
                           four_bit=cfg.four_bit, seed=cfg.seed)
    if cfg.gradient_checkpointing is True:
        model.activation_checkpointing_enable({"use_reentrant": False})
    model = apply_lora(model, **lora_settings(cfg))
    load_s = time.monotonic() - t0
    sample = data.train[:200]
    t0 = time.monotonic()
    batches = _calibration_batches(cfg, sample, tok, dev, steps)
    tokenize_s = (time.monotonic() - t0) / max(1, len(sample))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate)
    if causal and cfg.compile is True:
        from tools.train.modeling import compile_layers

        compile_layers(model)
    # the run's own arithmetic: bf16 autocast where training will use it (a causal LM on a GPU or a bf16 CPU)
    cast = causal and autocast_on(cfg.precision, dev, model)
    timings: list[tuple[float, int]] = []
    for step_batches in batches:
        t0 = time.monotonic()
        for batch, _tokens in step_batches:
            with bf16_autocast(cast, dev):
                loss = _loss(model, batch, cfg) / len(step_batches)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        timings.append((time.monotonic() - t0, sum(t for _, t in step_batches)))
    timed = timings[1:] or timings
    per_token = sum(s for s, _ in timed) / max(1, sum(t for _, t in timed))
    first_extra = max(0.0, timings[0][0] - timings[0][1] * per_token)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        save_s = time.monotonic() - t0
    return Calibration(startup_s=round(startup_s, 3), data_s_per_example=data_s, load_s=round(load_s, 3),
                       tokenize_s_per_example=tokenize_s, first_step_extra_s=round(first_extra, 3),
                       step_s_per_token=per_token, save_s=round(save_s, 3))


def _labels(rows: list[Any], task: str) -> list[str]:
    if task == "classification":
        return sorted({r.label for r in rows if r.label is not None})
    if task == "token":
        return sorted({t for r in rows for t in r.tags or []})
    return []


def _calibration_batches(cfg: TrainConfig, rows: list[Any], tok: Any, device: str,
                         steps: int) -> list[list[tuple[dict[str, Any], int]]]:
    """The first `steps` optimizer steps of the run's own plan over a sample of its data, ready on the device."""
    if cfg.task == "causal":
        from tools.train.sft import materialise, plan_batches, tokenize_rows

        examples = tokenize_rows(rows, tok, cfg.context)
        plan, _, _ = plan_batches([len(e) for e in examples], cfg, 1)
        multiple = row_multiple(cfg, device.startswith("cuda")) if cfg.packing else 0
        pad = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
        micro = [materialise(examples, idx, cfg, pad, device, multiple) for idx in plan[: steps * cfg.grad_accum]]
        sized = [(b, int(b["input_ids"].numel())) for b, _ in micro]
    else:
        from tools.train.classify import collate, encode_rows

        max_len = min(cfg.context, int(tok.model_max_length) if tok.model_max_length < 100_000 else cfg.context)
        items = encode_rows(rows, cfg, tok, max_len)
        pad = int(tok.pad_token_id or 0)
        chunks = [items[i: i + cfg.batch_size] for i in range(0, len(items), cfg.batch_size)]
        chunks = (chunks * (steps * cfg.grad_accum // max(1, len(chunks)) + 1))[: steps * cfg.grad_accum]
        batches = [collate(c, pad, cfg.task == "token", device) for c in chunks]
        sized = [(b, int(b["input_ids"].numel())) for b in batches]
    return [sized[i: i + cfg.grad_accum] for i in range(0, len(sized), cfg.grad_accum)]


def _loss(model: Any, batch: dict[str, Any], cfg: TrainConfig) -> Any:
    if cfg.task == "causal":
        from tools.train.loss import lm_loss

        return lm_loss(model, batch, cfg.loss_chunk)[0]
    return model(**batch).loss


def in_run_seconds(cfg: TrainConfig, lengths: list[int], device: str, *, world: int, process_start: float) -> float:
    """The whole run's time as a run that was not given its plan's figure estimates it for itself, at its start
    event: the time already spent plus the rest, from this machine's calibration (or the rough rate)."""
    from tools.train.catalog import model_shape

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

    from tools.train.catalog import model_shape

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
        from tools.errors import MTWError

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
        from tools.train.sft import plan_batches

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


def dataset_lengths(cfg: TrainConfig) -> list[int]:
    """Token counts of the dataset's examples (the model's tokenizer if available, else ~4 characters a token)."""
    from tools.train.inputs import dataset_rows

    rows = dataset_rows(cfg.data).examples
    try:
        if cfg.task == "causal":
            from tools.train.catalog import load_tokenizer

            tok = load_tokenizer(cfg.model)
        else:
            from transformers import AutoTokenizer

            from tools.train.modeling import encoder_source

            tok = AutoTokenizer.from_pretrained(encoder_source(cfg.model), local_files_only=True)
    except Exception:  # no tokenizer offline (or an encoder name): fall back to the character estimate
        return [max(1, len(r.all_text()) // 4) for r in rows]
    return [len(tok(r.all_text(), add_special_tokens=False)["input_ids"]) for r in rows]
