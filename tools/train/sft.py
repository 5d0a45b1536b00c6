"""Causal-LM LoRA fine-tuning, read top to bottom: setup → train → save, narrated as events.

Why a lean loop and not TRL's SFTTrainer or the HF Trainer: our batches are padding-free packed
rows (position_ids restart per example) and our loss runs the output layer in chunks over label
tokens only; the Trainer computes full-vocabulary logits for every position and would need a
custom collator, a loss override and callbacks for every event, checkpoint and stop we narrate.
One readable loop with those pieces is shorter than the configuration around the Trainer, and
`bench/train_throughput.py` measures it against the stock Trainer recipe and against TRL's
SFTTrainer with its padding-free best-fit packing (which still computes the full-vocabulary logits,
and its per-step entropy and token-accuracy metrics over them).

Run as `python -m tools.train.sft RUN_DIR [--resume]` (what `mtw train --nproc N` starts under
torchrun, reading RUN_DIR/config.yaml); `mtw train` calls `train()` directly.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from tools import jobs
from tools.errors import MTWError, UsageError, is_out_of_memory, storage_error
from tools.models.catalog import resolve
from tools.run_events import EventType, finished
from tools.train.bases import record_base, weights_source
from tools.train.batching import label_tokens, pack_plan
from tools.train.checkpoint import StopRequest, pick_checkpoint, restore, save_checkpoint
from tools.train.config import TrainConfig, load_run_config, reproduce_command, save_run_config
from tools.train.cores import CoreShare
from tools.train.data import TokenizedExample
from tools.train.distributed import Dist, agree, all_reduce_grads, setup_distributed, start_like_main
from tools.train.estimate import estimate
from tools.train.events import EventWriter, Listener, read_events
from tools.train.inputs import load_split, read_training_data, save_split
from tools.train.loop import (
    DIAGNOSE_EVERY,
    Health,
    LiveEta,
    crashed_event,
    failed_event,
    lr_lambda,
    peak_memory_mb,
    save_adapter,
)
from tools.train.loss import lm_loss
from tools.train.memory import memory_budget_mb
from tools.train.modeling import apply_lora, compile_layers, load_base, lora_settings
from tools.train.planning import materialise, plan_batches, token_budget, tokenize_rows
from tools.train.sharding import FSDP, NONE, pick_sharding, shard_base
from tools.train.speed import AutoCheckpointing, Speed, precision, speed_settings
from tools.train.timing import in_run_seconds, process_started

# ---------------------------------------------------------------- setup


def choose_sharding(cfg: TrainConfig, dist: Dist) -> str:
    """`fsdp` or `none`, the same in every process: the main process decides (for `auto`, from the memory
    estimate of a step with the whole base) and tells the others."""
    if dist.world == 1:
        return NONE
    import torch.distributed as tdist

    choice = [NONE]
    if dist.main:
        need, budget = 0.0, 1.0
        if cfg.sharding == "auto":
            e = estimate(cfg, device=dist.device, world=dist.world)
            # on a CPU the processes of one machine share its RAM; each GPU is its own
            share = 1 if dist.device.startswith("cuda") else int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
            need, budget = e.total_mb, memory_budget_mb(cfg, dist.device, e.available_mb) / share
        choice = [pick_sharding(cfg.sharding, world=dist.world, need_mb=need, budget_mb=budget)]
    tdist.broadcast_object_list(choice, src=0)
    return str(choice[0])


@torch.no_grad()
def evaluate(model: Any, examples: list[TokenizedExample], cfg: TrainConfig, pad_id: int, device: str,
             speed: Speed | None = None) -> float:
    """Mean loss per label token over the validation rows."""
    model.eval()
    total = torch.zeros((), device=device)
    count = 0
    budget = token_budget([len(e) for e in examples], cfg)
    multiple = speed.row_multiple if speed else 0
    for idx in pack_plan([len(e) for e in examples], budget, seed=0):
        batch, _ = materialise(examples, idx, cfg, pad_id, device, multiple)
        with precision(speed, device):
            loss, n = lm_loss(model, batch, cfg.loss_chunk)
        total += loss.float() * n
        count += n
    model.train()
    return total.item() / max(1, count)


# ---------------------------------------------------------------- train


def train(cfg: TrainConfig, run_dir: Path | str, *, resume: bool = False, listener: Listener | None = None,
          command: str | None = None, estimate_s: float | None = None) -> dict[str, Any]:
    """Run (or resume) a causal-LM LoRA fine-tune into RUN_DIR; returns the final event (done/stopped/failed).

    `estimate_s`: the whole run's time as the plan showed it to the user (else the run estimates it itself).
    """
    run = Path(run_dir)
    dist = setup_distributed()
    if resume:
        cfg = load_run_config(run)
    elif dist.main and (run / "events.jsonl").exists():
        raise UsageError(f"{run} already holds a training run.",
                         fix="Continue it with --resume, or choose a new folder with --out.")
    run.mkdir(parents=True, exist_ok=True)
    events = EventWriter(run, listener, enabled=dist.main)
    prior = read_events(run) if resume else []
    if finished(prior):
        raise UsageError(f"{run} has already finished; its adapter is in {run / 'adapter'}.",
                         fix="To train again, start a new run with another --out.")
    if dist.main and not resume:
        save_run_config(run, cfg, command)
    try:
        final = _fit(cfg, run, dist, events, prior, resume, estimate_s)
    except MTWError as exc:
        final = failed_event(events, exc)
    except Exception as exc:
        if isinstance(exc, OSError) and (plain := storage_error(exc, run)):
            final = failed_event(events, plain)
        elif is_out_of_memory(exc):
            final = events.emit(
                "failed", code="oom",
                message=f"Training ran out of memory on {dist.device} (batch size {cfg.batch_size}, "
                        f"context {cfg.context}).",
                fix="Use --set batch_size=1 (or 2) and --set context=2048, turn on "
                    "--set gradient_checkpointing=true, and close other programs.")
        else:
            final = crashed_event(events, exc, run)
    if final["type"] == "failed" and final.get("code") in ("disk_full", "read_only"):
        return final  # nothing more can be written; the run folder and its checkpoints stay as they were
    if final["type"] == "failed" and dist.main:
        Health(events, prior, None, dist.device).check()
    if dist.main:
        jobs.record_outcome(run, final)
    return final


def _fit(cfg: TrainConfig, run: Path, dist: Dist, events: EventWriter, prior: list[dict[str, Any]],
         resume: bool, estimate_s: float | None = None) -> dict[str, Any]:
    # ---- data: checked before any model is loaded, so a bad file fails in seconds; a resumed run keeps its split
    data = read_training_data(cfg.data, model=cfg.model, context=cfg.context, val_share=cfg.val_share,
                              seed=cfg.seed, min_examples=cfg.min_examples, method="sft",
                              recorded=load_split(run) if resume else None)
    if dist.main and not resume:
        save_split(run, data, cfg.data)
    torch.manual_seed(cfg.seed)
    sharding = choose_sharding(cfg, dist)
    # the very weights the run trains on are recorded once (a GGUF in the user's Ollama, a folder …), so evaluation,
    # export and a resume read the same ones
    if resume:
        source = weights_source(run, cfg.model)
    else:
        entry = resolve(cfg.model)
        if dist.main:
            record_base(run, entry, cfg.model)
        source = entry.gguf or cfg.model
    # a base to be sharded is loaded on the CPU: no device ever holds all of it
    model, tok = load_base(source, "causal", precision=cfg.precision, device=dist.device, four_bit=cfg.four_bit,
                           keep_on_cpu=sharding == FSDP)
    train_ex = tokenize_rows(data.train, tok, cfg.context)
    val_ex = tokenize_rows(data.validation, tok, cfg.context)
    if not train_ex:
        raise UsageError(f"No example in {cfg.data} has an assistant answer to learn from.",
                         fix="Each example needs at least one assistant turn; run `mtw check` on it.")
    pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else 0)

    # ---- model: frozen base + LoRA
    if cfg.gradient_checkpointing is True:
        model.activation_checkpointing_enable({"use_reentrant": False})
    model = apply_lora(model, **lora_settings(cfg))
    if sharding == FSDP:
        shard_base(model, dist.device, dist.world)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    plan, total_steps, per_epoch = plan_batches([len(e) for e in train_ex], cfg, dist.world)
    speed = speed_settings(cfg, dist.device, total_steps, model)
    if speed.compile:
        compile_layers(model)
    memory = AutoCheckpointing(model, speed, cfg.loss_chunk, dist.device)
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                                  fused=True if speed.fused_adamw else None)
    warmup = math.ceil(total_steps * cfg.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total_steps, warmup))
    step = 0
    # what the run did before a resume, so its final metrics cover the whole run
    before: dict[str, Any] = {}
    checkpoint, resume_note = pick_checkpoint(run) if resume else (None, None)
    if checkpoint is not None:
        state = restore(checkpoint, model, optimizer, scheduler, data.version, cfg.data)
        step, before = int(state["step"]), state["extra"]
    if dist.world > 1:
        step = start_like_main(model, optimizer, scheduler, step, dist)

    n_params = sum(p.numel() for p in model.parameters())
    if estimate_s is None:
        estimate_s = in_run_seconds(cfg, [len(e) for e in train_ex + val_ex], dist.device, world=dist.world,
                                    process_start=process_started())
    events.emit("start", estimate_s=estimate_s, config=cfg.model_dump(mode="json"), n_examples=len(train_ex),
                n_validation=len(val_ex),
                total_steps=total_steps, device=dist.device, world_size=dist.world, sharding=sharding,
                resumed_from=step,
                trainable_params=sum(p.numel() for p in trainable), total_params=n_params,
                dataset_version=data.version, held_out_duplicates=len(data.dropped_rows), pid=os.getpid(),
                speed=speed.as_event(), **({"resume_note": resume_note} if resume_note else {}))
    if dist.main:
        jobs.record_start(run, cfg, dataset_version=data.version, pid=os.getpid())
    health = Health(events, prior, len(train_ex), dist.device)
    per_step = cfg.grad_accum * dist.world
    resume_cmd = reproduce_command(cfg, run) + " --resume"
    started = time.monotonic() - float(before.get("seconds", 0.0))
    tokens_done = int(before.get("tokens", 0))
    train_loss = float("nan") if before.get("train_loss") is None else float(before["train_loss"])
    val_loss: float | None = before.get("val_loss")
    eta = LiveEta(cfg.eval_every if val_ex else 0, cfg.checkpoint_every, sum(len(e) for e in val_ex))
    # one process on a CPU: as many threads as the cores other programs leave free (tools/train/cores.py)
    share = CoreShare(torch.set_num_threads, torch.get_num_threads()) if dist.device == "cpu" and dist.world == 1 \
        else None

    with StopRequest() as stop:
        while step < total_steps:
            t0 = time.monotonic()
            # ---- one optimizer step over grad_accum micro-batches per process
            loss_sum = torch.zeros((), device=dist.device)
            label_sum, tokens = 0, 0
            base = step * per_step
            micro = [plan[(base + k * dist.world + dist.rank) % len(plan)] for k in range(cfg.grad_accum)]
            batches = [materialise(train_ex, idx, cfg, pad_id, dist.device, speed.row_multiple) for idx in micro]
            recomputed = memory.before_step(max(b["input_ids"].numel() for b, _ in batches))
            step_labels = max(1, sum(label_tokens(b) for b, _ in batches))
            for batch, real in batches:
                with precision(speed, dist.device):
                    loss, n = lm_loss(model, batch, cfg.loss_chunk)
                # weight each micro-batch by its label tokens: the step's loss is the mean over all of them
                (loss * (n / step_labels)).backward()
                loss_sum += loss.detach().float() * n
                label_sum += n
                tokens += real
            if dist.world > 1:
                all_reduce_grads(trainable, dist.world)
            torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            train_loss = loss_sum.item() / max(1, label_sum)  # the step's one wait for the device
            if not math.isfinite(train_loss):
                events.emit("step", step=step, epoch=round(step * per_step / per_epoch, 3), loss=train_loss,
                            lr=scheduler.get_last_lr()[0], tokens_per_s=0.0, eta_s=None,
                            peak_mem_mb=peak_memory_mb(dist.device))
                raise MTWError(f"The loss became NaN at step {step}: training blew up and cannot recover.",
                               fix=f"Lower the learning rate (e.g. --set learning_rate={cfg.learning_rate / 4:g}) "
                                   "and check the data with `mtw check`.", code="nan_loss")
            elapsed = time.monotonic() - t0
            tokens_done += tokens * dist.world
            extra: dict[str, Any] = {"checkpointed_layers": recomputed} if recomputed else {}
            threads = share.after_step(step) if share is not None else None
            if threads is not None:
                extra["threads"] = threads
            events.emit("step", step=step, epoch=round(step * per_step / per_epoch, 3), loss=round(train_loss, 5),
                        lr=scheduler.get_last_lr()[0], tokens_per_s=round(tokens * dist.world / max(elapsed, 1e-9), 1),
                        eta_s=eta.after_step(elapsed, step, total_steps, tokens),
                        peak_mem_mb=peak_memory_mb(dist.device), **extra)
            if val_ex and (step % cfg.eval_every == 0 or step == total_steps):
                t_eval = time.monotonic()
                val_loss = evaluate(model, val_ex, cfg, pad_id, dist.device, speed)
                eta.eval_s = time.monotonic() - t_eval
                events.emit("eval", step=step, val_loss=round(val_loss, 5))
                health.check()
            elif step % DIAGNOSE_EVERY == 0:
                health.check()
            stop_now = agree(stop.requested, dist)
            if (step % cfg.checkpoint_every == 0 or stop_now) and dist.main:
                t_save = time.monotonic()
                path = save_checkpoint(run, step, model, optimizer, scheduler,
                                       {"dataset_version": data.version, "tokens": tokens_done,
                                        "seconds": time.monotonic() - started, "train_loss": train_loss,
                                        "val_loss": val_loss})
                eta.save_s = time.monotonic() - t_save
                events.emit("checkpoint", step=step, path=str(path))
            if stop_now and step < total_steps:
                if dist.main:
                    # the weights so far, so a stopped run can be tried and evaluated before it is resumed
                    save_adapter(model, tok, run / "adapter")
                return events.emit("stopped", step=step,
                                   message=f"stopped at step {step}; resume with `{resume_cmd}`")

    # ---- save: the adapter, and the tokenizer that goes with it
    health.check()
    adapter = run / "adapter"
    if dist.main:
        try:
            save_adapter(model, tok, adapter)
        except OSError as exc:
            raise (storage_error(exc, adapter) or exc) from exc
    metrics = {"train_loss": round(train_loss, 5), "val_loss": None if val_loss is None else round(val_loss, 5),
               "steps": step, "epochs": round(step * per_step / per_epoch, 3), "tokens": tokens_done,
               "seconds": round(time.monotonic() - started, 1)}
    return events.emit("done", adapter=str(adapter), metrics=metrics)


def main(argv: list[str] | None = None) -> int:
    """`python -m tools.train.sft RUN_DIR [--resume] [--estimate-s S]`: train from RUN_DIR/config.yaml (the
    torchrun entry); S is the whole run's time as the plan showed it."""
    args = list(sys.argv[1:] if argv is None else argv)
    resume = "--resume" in args
    estimate_s = float(args[args.index("--estimate-s") + 1]) if "--estimate-s" in args else None
    run_dir = Path(args[0])
    final = train(load_run_config(run_dir), run_dir, resume=resume, estimate_s=estimate_s)
    return 0 if final["type"] != EventType.FAILED else 1


if __name__ == "__main__":
    raise SystemExit(main())
