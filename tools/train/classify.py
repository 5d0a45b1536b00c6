"""Encoder LoRA for text classification and entity tagging, read top to bottom: setup → train → save.

The same run folder, events, checkpoints and stop/resume as `sft.py`, on an encoder
(`AutoModelForSequenceClassification` / `AutoModelForTokenClassification`); the packaged MiniLM
is the offline default. Each evaluation reports accuracy and macro precision / recall / F1.
"""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path
from typing import Any

import torch

from tools import jobs
from tools.errors import MTWError, UsageError, is_out_of_memory
from tools.models.catalog import model_shape
from tools.run_events import finished
from tools.train.checkpoint import StopRequest, latest_checkpoint, resume_from, save_checkpoint
from tools.train.config import TrainConfig, load_run_config, reproduce_command, save_run_config
from tools.train.data import IGNORE
from tools.train.events import EventWriter, Listener, read_events
from tools.train.inputs import load_split, read_training_data, save_split
from tools.train.loop import DIAGNOSE_EVERY, Health, crashed_event, lr_lambda, peak_memory_mb, save_adapter
from tools.train.modeling import apply_lora, load_base, lora_settings
from tools.train.planning import collate, encode_rows
from tools.train.timing import cached_calibration, calibration_key, rough_calibration

ENCODER_DEFAULTS: dict[str, Any] = {"learning_rate": 1e-3, "epochs": 3, "batch_size": 16}
"""A small encoder with a fresh head learns at a higher rate than the generators' presets, over a few passes, in
larger batches of short texts (the common recipe for BERT-sized classifiers)."""
STEP_BUDGET_S = 10 * 60
"""A default classifier run is sized to finish in about this long on the machine it runs on."""
MIN_PLANNED_STEPS = 50
"""Fewer steps than this teach a fresh head nothing, however slow the machine."""


def planned_steps(n_train: int, *, batch_size: int, grad_accum: int, epochs: float, seconds_per_step: float,
                  budget_s: float = STEP_BUDGET_S) -> int | None:
    """The steps a default classifier run takes: None for whole epochs when they fit the time budget, else what
    fits (at least MIN_PLANNED_STEPS, never more than the epochs need)."""
    full = math.ceil(math.ceil(n_train / max(1, batch_size)) * epochs / max(1, grad_accum))
    affordable = int(budget_s / max(seconds_per_step, 1e-6))
    if full <= affordable:
        return None
    return max(min(full, MIN_PLANNED_STEPS), affordable)


def sized_steps(cfg: TrainConfig, texts: list[str], *, cuda: bool) -> int | None:
    """`planned_steps` for this data on this machine, timed with the estimate's speed model."""
    # about 4 characters a token: the same rough count the dataset check uses without a tokenizer
    lengths = [max(1, len(t) // 4) + 2 for t in texts]
    step_tokens = cfg.batch_size * cfg.grad_accum * max(1, sum(lengths) // max(1, len(lengths)))
    # this machine's measured speed for the model when it has one, else the rough rate
    calib = (cached_calibration(calibration_key(cfg, "cuda" if cuda else "cpu", step_tokens))
             or rough_calibration(cfg, model_shape(cfg.model).params_b, cuda, False))
    per_step = calib.step_s_per_token * step_tokens
    n_train = len(texts) - round(len(texts) * cfg.val_share)
    return planned_steps(n_train, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, epochs=cfg.epochs,
                         seconds_per_step=per_step, budget_s=STEP_BUDGET_S)


def classification_metrics(truth: list[int], predicted: list[int], n_labels: int,
                           skip: frozenset[int] = frozenset()) -> dict[str, float]:
    """Accuracy and macro precision / recall / F1 over the classes present (minus `skip`, e.g. the O tag)."""
    pairs = list(zip(truth, predicted, strict=True))
    accuracy = sum(t == p for t, p in pairs) / max(1, len(pairs))
    precisions, recalls, f1s = [], [], []
    for c in range(n_labels):
        if c in skip or not any(t == c or p == c for t, p in pairs):
            continue
        tp = sum(t == c and p == c for t, p in pairs)
        fp = sum(t != c and p == c for t, p in pairs)
        fn = sum(t == c and p != c for t, p in pairs)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        precisions.append(prec)
        recalls.append(rec)
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)

    def mean(xs: list[float]) -> float:
        return round(sum(xs) / len(xs), 4) if xs else 0.0

    return {"accuracy": round(accuracy, 4), "precision": mean(precisions), "recall": mean(recalls), "f1": mean(f1s)}


@torch.no_grad()
def evaluate(model: Any, items: list[dict[str, Any]], cfg: TrainConfig, pad_id: int, device: str) -> dict[str, float]:
    """Validation loss and accuracy / precision / recall / F1."""
    model.eval()
    token_task = cfg.task == "token"
    losses, truth, predicted = [], [], []
    for start in range(0, len(items), max(1, cfg.batch_size)):
        batch = collate(items[start: start + cfg.batch_size], pad_id, token_task, device)
        out = model(**batch)
        losses.append((out.loss.item(), len(items[start: start + cfg.batch_size])))
        pred = out.logits.argmax(-1)
        keep = batch["labels"] != IGNORE
        truth += batch["labels"][keep].tolist()
        predicted += pred[keep].tolist()
    model.train()
    skip = frozenset(i for i, name in enumerate(cfg.labels) if name == "O")
    metrics = classification_metrics(truth, predicted, len(cfg.labels), skip)
    val_loss = sum(loss * n for loss, n in losses) / max(1, sum(n for _, n in losses))
    return {"val_loss": round(val_loss, 5), **metrics}


def train(cfg: TrainConfig, run_dir: Path | str, *, resume: bool = False, listener: Listener | None = None,
          command: str | None = None, estimate_s: float | None = None) -> dict[str, Any]:
    """Run (or resume) a classifier / tagger LoRA fine-tune into RUN_DIR; returns the final event.

    `estimate_s`: the whole run's time as the plan showed it to the user (carried by the start event).
    """
    run = Path(run_dir)
    if resume:
        cfg = load_run_config(run)
    elif (run / "events.jsonl").exists():
        raise UsageError(f"{run} already holds a training run.",
                         fix="Continue it with --resume, or choose a new folder with --out.")
    run.mkdir(parents=True, exist_ok=True)
    events = EventWriter(run, listener)
    prior = read_events(run) if resume else []
    if finished(prior):
        raise UsageError(f"{run} has already finished; its adapter is in {run / 'adapter'}.",
                         fix="To train again, start a new run with another --out.")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        final = _fit(cfg, run, device, events, prior, resume, command, estimate_s)
    except MTWError as exc:
        final = events.emit("failed", code=exc.code, message=exc.message, fix=exc.fix)
    except Exception as exc:
        if is_out_of_memory(exc):
            final = events.emit("failed", code="oom", message=f"Training ran out of memory on {device}.",
                                fix="Use --set batch_size=4 (or less) and close other programs.")
        else:
            final = crashed_event(events, exc, run)
    jobs.record_outcome(run, final)
    return final


def _fit(cfg: TrainConfig, run: Path, device: str, events: EventWriter, prior: list[dict[str, Any]], resume: bool,
         command: str | None, estimate_s: float | None = None) -> dict[str, Any]:
    # ---- data: checked first; the label names come from the data when the config has none
    data = read_training_data(cfg.data, model=None, context=cfg.context, val_share=cfg.val_share, seed=cfg.seed,
                              check_model=False, min_examples=cfg.min_examples,
                              recorded=load_split(run) if resume else None)
    if not resume:
        save_split(run, data, cfg.data)
    if not cfg.labels:
        names = {r.label for r in data.train if r.label is not None} if cfg.task == "classification" else {
            t for r in data.train for t in r.tags or []}
        cfg = cfg.model_copy(update={"labels": sorted(names)})
    if not resume:
        save_run_config(run, cfg, command)
    if cfg.precision == "bf16" and not device.startswith("cuda"):
        # CPU bf16 is autocast in the text generators' loop; an encoder this small would gain nothing from it
        raise UsageError("precision bf16 on a CPU is for text generation; classifiers and taggers train in fp32 there.",
                         fix="Use --set precision=auto.")
    model, tok = load_base(cfg.model, cfg.task, labels=cfg.labels, precision=cfg.precision, device=device,
                           seed=cfg.seed)
    max_len = min(cfg.context, int(tok.model_max_length) if tok.model_max_length < 100_000 else cfg.context)
    train_items = encode_rows(data.train, cfg, tok, max_len)
    val_items = encode_rows(data.validation, cfg, tok, max_len)
    pad_id = int(tok.pad_token_id or 0)

    # ---- model: frozen encoder + LoRA, the new head trained in full
    model = apply_lora(model, **lora_settings(cfg))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    per_epoch = math.ceil(len(train_items) / cfg.batch_size)
    total_steps = cfg.max_steps or math.ceil(per_epoch * cfg.epochs / cfg.grad_accum)
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total_steps, math.ceil(total_steps
                                                                                               * cfg.warmup_ratio)))
    step = 0
    checkpoint = latest_checkpoint(run) if resume else None
    if checkpoint is not None:
        step = resume_from(checkpoint, model, optimizer, scheduler, data.version, cfg.data)
    first_step = step
    events.emit("start", estimate_s=estimate_s, config=cfg.model_dump(mode="json"), n_examples=len(train_items),
                n_validation=len(val_items), total_steps=total_steps, device=device, world_size=1,
                resumed_from=step, trainable_params=sum(p.numel() for p in trainable),
                total_params=sum(p.numel() for p in model.parameters()), dataset_version=data.version,
                held_out_duplicates=len(data.dropped_rows), pid=os.getpid())
    jobs.record_start(run, cfg, dataset_version=data.version, pid=os.getpid())
    health = Health(events, prior, len(train_items), device)

    def micro_batch(k: int) -> list[dict[str, Any]]:
        """The k-th micro-batch of the run: epoch e's order is a shuffle by seed + e (the same on resume)."""
        epoch, pos = divmod(k, per_epoch)
        order = list(range(len(train_items)))
        random.Random(cfg.seed + epoch).shuffle(order)
        return [train_items[i] for i in order[pos * cfg.batch_size: (pos + 1) * cfg.batch_size]]

    resume_cmd = reproduce_command(cfg, run) + " --resume"
    started = time.monotonic()
    metrics: dict[str, float] = {}
    train_loss = float("nan")
    with StopRequest() as stop:
        while step < total_steps:
            t0 = time.monotonic()
            loss_sum, tokens = 0.0, 0
            for k in range(cfg.grad_accum):
                batch = collate(micro_batch(step * cfg.grad_accum + k), pad_id, cfg.task == "token", device)
                loss = model(**batch).loss
                (loss / cfg.grad_accum).backward()
                loss_sum += loss.item() / cfg.grad_accum
                tokens += int(batch["attention_mask"].sum())
            torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            train_loss = loss_sum
            if not math.isfinite(train_loss):
                raise MTWError(f"The loss became NaN at step {step}: training blew up and cannot recover.",
                               fix=f"Lower the learning rate (e.g. --set learning_rate={cfg.learning_rate / 4:g}).",
                               code="nan_loss")
            run_s = time.monotonic() - started
            events.emit("step", step=step, epoch=round(step * cfg.grad_accum / per_epoch, 3),
                        loss=round(train_loss, 5), lr=scheduler.get_last_lr()[0],
                        tokens_per_s=round(tokens / max(time.monotonic() - t0, 1e-9), 1),
                        eta_s=round(run_s / max(1, step - first_step) * (total_steps - step), 1),
                        peak_mem_mb=peak_memory_mb(device))
            if val_items and (step % cfg.eval_every == 0 or step == total_steps):
                metrics = evaluate(model, val_items, cfg, pad_id, device)
                events.emit("eval", step=step, **metrics)
                health.check()
            elif step % DIAGNOSE_EVERY == 0:
                health.check()
            if step % cfg.checkpoint_every == 0 or stop.requested:
                path = save_checkpoint(run, step, model, optimizer, scheduler,
                                           {"dataset_version": data.version})
                events.emit("checkpoint", step=step, path=str(path))
            if stop.requested and step < total_steps:
                return events.emit("stopped", step=step,
                                   message=f"stopped at step {step}; resume with `{resume_cmd}`")

    # ---- save
    health.check()
    adapter = run / "adapter"
    save_adapter(model, tok, adapter)
    summary = {"train_loss": round(train_loss, 5), "steps": step, "seconds": round(time.monotonic() - started, 1),
               **metrics}
    return events.emit("done", adapter=str(adapter), metrics=summary)
