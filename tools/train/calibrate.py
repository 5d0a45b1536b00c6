"""Measuring this machine on a run's own model and data: a few real optimizer steps, timed part by part (what the
plan's time is built from once it has run)."""

from __future__ import annotations

import tempfile
import time
from typing import TYPE_CHECKING, Any

from tools.train.inputs import read_training_data
from tools.train.memory import row_multiple
from tools.train.timing import CALIBRATION_STEPS, Calibration, startup_seconds

if TYPE_CHECKING:
    from tools.train.config import TrainConfig


def calibrate(cfg: TrainConfig, device: str | None = None, *, steps: int = CALIBRATION_STEPS,
              startup: bool = True) -> Calibration:
    """Measure this machine on the run's own model and data: read the data, load the model, tokenise, time
    a few real optimizer steps with the run's batch settings, save an adapter. Cached in MTW_HOME; this is
    what the plan's time is built from (the chat can run it in the background while the user reads the plan).
    `startup`: also time a fresh process's start-up (once per machine); a run's own process, which has
    already started, does without.
    """
    import torch

    from tools.train.modeling import apply_lora, compile_layers, load_base, lora_settings
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
    from tools.train.planning import collate, encode_rows, materialise, plan_batches, tokenize_rows

    if cfg.task == "causal":
        examples = tokenize_rows(rows, tok, cfg.context)
        plan, _, _ = plan_batches([len(e) for e in examples], cfg, 1)
        multiple = row_multiple(cfg, device.startswith("cuda")) if cfg.packing else 0
        pad = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
        micro = [materialise(examples, idx, cfg, pad, device, multiple) for idx in plan[: steps * cfg.grad_accum]]
        sized = [(b, int(b["input_ids"].numel())) for b, _ in micro]
    else:
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

