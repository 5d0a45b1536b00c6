"""Preference rounds (DPO, KTO) on top of a run's LoRA adapter, read top to bottom: setup → train → save.

The losses are the field's: TRL's DPOTrainer and KTOTrainer. What makes a round behave like a supervised run
(tools/train/sft.py) for the rest of the product is the `Narration` callback: it turns the Trainer's steps,
logs, evaluations and saves into the same events.jsonl, and a stop request (SIGTERM, the wizard's Stop) into a
checkpoint and a clean `stopped`. Checkpoints are the Trainer's own (RUN_DIR/checkpoints/checkpoint-N), which is
what lets `--resume` continue with the same data order, optimizer and schedule.

The reference the round measures its changes against is where it started, frozen: TRL copies a PEFT model's
adapter into a second, frozen "ref" adapter (`--from-run`: that run's adapter; otherwise a fresh LoRA, so the
base model itself). Only the trained adapter is saved.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

from tools import jobs
from tools.errors import MTWError, UsageError, is_out_of_memory, storage_error
from tools.models.catalog import resolve
from tools.run_events import finished
from tools.train.bases import record_base, run_entry, weights_source
from tools.train.checkpoint import StopRequest
from tools.train.config import TrainConfig, load_run_config, reproduce_command, save_run_config
from tools.train.events import EventWriter, Listener, read_events
from tools.train.inputs import load_split, read_training_data, save_split
from tools.train.loop import Health, crashed_event, failed_event, save_adapter
from tools.train.modeling import apply_lora, load_base, lora_settings, pick_dtype
from tools.train.pairs import dpo_rows, kto_rows
from tools.train.preference_narration import PROGRESS, Narration
from tools.train.timing import in_run_seconds, process_started

CHECKPOINTS = "checkpoints"
KEEP = 2
"""Checkpoints kept, as for supervised runs."""
# a preference step costs more than a supervised step on the same tokens: DPO runs the reference (a forward
# pass, about a third of a training step) over both answers; KTO adds a forward pass of both models over
# mismatched answers for its reference point
STEP_COST = {"dpo": 4 / 3, "kto": 2.0}


def start_point(from_run: str | Path) -> TrainConfig:
    """The config of the run a round starts from; refuses when that run has no adapter to start from."""
    run = Path(from_run)
    cfg = load_run_config(run)
    if not (run / "adapter" / "adapter_config.json").is_file():
        raise UsageError(f"{run} has no adapter yet, so a round cannot start from it.",
                         fix=f"Let that run finish (or resume it: mtw train --out {run} --resume), or leave out "
                             "--from-run to start from the base model.")
    if cfg.task != "causal":
        raise UsageError(f"{run} trained a {cfg.task} model; preference rounds train text generators.",
                         fix="Give --from-run a run that trained on conversations.")
    return cfg


def round_settings(method: str, from_run: Path | None, model: str | None) -> tuple[str, dict[str, Any]]:
    """`mtw train --method M --from-run R [--model X]` checked: the base model and the config fields of the run
    (a round keeps the starting run's base and adapter shape); every way the flags can disagree is refused."""
    if method not in ("sft", "dpo", "kto"):
        raise UsageError(f"--method {method} is not one mtw knows.",
                         fix="Use sft (examples), dpo (pairs: which answer is better) or kto (answers rated good or "
                             "bad).")
    if from_run is None:
        return model or "", {} if method == "sft" else {"method": method}
    if method == "sft":
        raise UsageError("--from-run starts a preference round on top of a run, and --method is sft.",
                         fix="Add --method dpo (pairs of answers) or --method kto (answers rated good or bad).")
    start = start_point(from_run)
    if model and model != start.model:
        raise UsageError(f"--from-run {from_run} trained on {start.model}, and its adapter only fits that base, not "
                         f"{model}.", fix="Leave out --model (the round uses the run's base).")
    return start.model, {"method": method, "from_run": str(Path(from_run).resolve()), "lora_r": start.lora_r,
                         "lora_alpha": start.lora_alpha, "lora_dropout": start.lora_dropout,
                         "lora_targets": start.lora_targets}


def pick_checkpoint(run: Path) -> tuple[Path | None, str | None]:
    """The newest complete Trainer checkpoint (its trainer_state.json, written last, reads back), and a sentence
    when newer ones were incomplete and skipped."""
    found = sorted((p for p in (run / CHECKPOINTS).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    skipped: list[str] = []
    for path in found:
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            skipped.append(path.name.split("-")[-1])
            continue
        note = (f"The newest checkpoint (step {', '.join(skipped)}) was not complete, so training resumes from step "
                f"{path.name.split('-')[-1]} instead.") if skipped else None
        return path, note
    if skipped:
        return None, f"No checkpoint was complete (step {', '.join(skipped)}), so training starts again from step 0."
    return None, None


# ---------------------------------------------------------------- setup


def train(cfg: TrainConfig, run_dir: Path | str, *, resume: bool = False, listener: Listener | None = None,
          command: str | None = None, estimate_s: float | None = None) -> dict[str, Any]:
    """Run (or resume) a DPO / KTO round into RUN_DIR; returns the final event (done / stopped / failed)."""
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
    if not resume:
        save_run_config(run, cfg, command)
    device = "cuda" if _cuda() else "cpu"
    try:
        with warnings.catch_warnings():
            # peft asks transformers a question it renamed; the warning says nothing to a user
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            final = _fit(cfg, run, device, events, prior, resume, estimate_s)
    except MTWError as exc:
        final = failed_event(events, exc)
    except Exception as exc:
        if isinstance(exc, OSError) and (plain := storage_error(exc, run)):
            final = failed_event(events, plain)
        elif is_out_of_memory(exc):
            final = events.emit(
                "failed", code="oom",
                message=f"The preference round ran out of memory on {device} (batch size {cfg.batch_size}, "
                        f"context {cfg.context}); each step holds both answers of every pair.",
                fix="Use --set batch_size=2 (or 1 for dpo) and --set context=2048, turn on "
                    "--set gradient_checkpointing=true, and close other programs.")
        else:
            final = crashed_event(events, exc, run)
    if final["type"] == "failed" and final.get("code") in ("disk_full", "read_only"):
        return final
    if final["type"] == "failed":
        Health(events, prior, None, device).check()
    jobs.record_outcome(run, final)
    return final


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _model(cfg: TrainConfig, device: str, run: Path, resume: bool) -> tuple[Any, Any]:
    """The base with the adapter to train: the --from-run adapter (trainable), else a fresh LoRA.

    The base is the very weights the --from-run run trained on (its base.json), recorded for this round too.
    """
    if resume:
        source = weights_source(run, cfg.model)
    else:
        entry = run_entry(cfg.from_run, cfg.model) if cfg.from_run else resolve(cfg.model)
        record_base(run, entry, cfg.model)
        source = entry.gguf or cfg.model
    base, tok = load_base(source, "causal", precision=cfg.precision, device=device, four_bit=cfg.four_bit)
    if cfg.from_run is None:
        return apply_lora(base, **lora_settings(cfg)), tok
    from peft import PeftModel

    start_point(cfg.from_run)
    return PeftModel.from_pretrained(base, str(Path(cfg.from_run) / "adapter"), is_trainable=True), tok


def _arguments(cfg: TrainConfig, run: Path, device: str, validating: bool, **extra: Any) -> Any:
    """TRL's config for the round, from ours: the same schedule, batches, checkpoints and evaluations."""
    dtype = str(pick_dtype(cfg.precision, device)).removeprefix("torch.")
    common: dict[str, Any] = dict(
        output_dir=str(run / CHECKPOINTS), learning_rate=cfg.learning_rate, per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps or -1, warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm, lr_scheduler_type="cosine", seed=cfg.seed,
        data_seed=cfg.seed, logging_steps=1, save_strategy="steps", save_steps=cfg.checkpoint_every,
        save_total_limit=KEEP, eval_strategy="steps" if validating else "no", eval_steps=cfg.eval_every,
        bf16=dtype == "bfloat16", fp16=dtype == "float16", use_cpu=device == "cpu",
        gradient_checkpointing=cfg.gradient_checkpointing is True, report_to=[], disable_tqdm=True,
        dataloader_num_workers=0, max_length=cfg.context, beta=cfg.beta, **extra,
    )
    from trl import DPOConfig, KTOConfig

    with warnings.catch_warnings():
        # transformers renames gradient_checkpointing; TRL's configs still set it, so it is the one to give
        warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*", category=FutureWarning)
        return (DPOConfig if cfg.method == "dpo" else KTOConfig)(**common)


def _fit(cfg: TrainConfig, run: Path, device: str, events: EventWriter, prior: list[dict[str, Any]],
         resume: bool, estimate_s: float | None) -> dict[str, Any]:
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar
    from transformers.trainer_callback import PrinterCallback

    # ---- data: checked before any model is loaded; a resumed round keeps its split
    data = read_training_data(cfg.data, model=cfg.model, context=cfg.context, val_share=cfg.val_share,
                              seed=cfg.seed, min_examples=cfg.min_examples, method=cfg.method,
                              recorded=load_split(run) if resume else None)
    if not resume:
        save_split(run, data, cfg.data)
    to_rows = dpo_rows if cfg.method == "dpo" else kto_rows
    train_rows, val_rows = to_rows(data.train), to_rows(data.validation)
    disable_progress_bar()

    # ---- model: the starting adapter, trainable; TRL keeps a frozen copy of it as the reference
    model, tok = _model(cfg, device, run, resume)
    checkpoint, resume_note = pick_checkpoint(run) if resume else (None, None)
    before = _progress(checkpoint)
    if estimate_s is None:
        estimate_s = _estimate(cfg, tok, train_rows + val_rows, device)
    narration = Narration(cfg, run, device, events, prior, data, len(train_rows), len(val_rows), estimate_s,
                          resume_note, before)
    if cfg.method == "dpo":
        from trl import DPOTrainer as Trainer
    else:
        from trl import KTOTrainer as Trainer  # type: ignore[assignment]
    trainer = Trainer(model=model, args=_arguments(cfg, run, device, bool(val_rows), **_balance(cfg, train_rows)),
                      train_dataset=Dataset.from_list(train_rows),
                      eval_dataset=Dataset.from_list(val_rows) if val_rows else None,
                      processing_class=tok, callbacks=[narration])
    trainer.remove_callback(PrinterCallback)  # the events are the narration
    with StopRequest() as stop:
        narration.stop = stop
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if narration.nan_at is not None:
        step = narration.nan_at
        raise MTWError(f"The loss became NaN at step {step}: training blew up and cannot recover.",
                       fix=f"Lower the learning rate (e.g. --set learning_rate={cfg.learning_rate / 4:g}) and check "
                           "the data with `mtw check`.", code="nan_loss")

    # ---- save: the trained adapter only (not TRL's frozen reference copy)
    adapter = run / "adapter"
    try:
        save_adapter(trainer.model, tok, adapter, adapters=["default"])
    except OSError as exc:
        raise (storage_error(exc, adapter) or exc) from exc
    step = trainer.state.global_step
    if narration.stopped:
        resume_cmd = reproduce_command(cfg, run) + " --resume"
        return events.emit("stopped", step=step, message=f"stopped at step {step}; resume with `{resume_cmd}`")
    narration.health.check()
    return events.emit("done", adapter=str(adapter), metrics=narration.metrics(step, trainer.state.epoch or 0.0))


def _balance(cfg: TrainConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """KTO's class weights, as TRL advises: the good answers weighted so that they count as much as the bad ones
    (ratings are rarely half and half: people mostly click 👍)."""
    good = sum(bool(r.get("label")) for r in rows)
    bad = len(rows) - good
    if cfg.method != "kto" or not good or not bad:
        return {}
    return {"desirable_weight": round(bad / good, 4), "undesirable_weight": 1.0}


def _progress(checkpoint: Path | None) -> dict[str, Any]:
    if checkpoint is None:
        return {}
    try:
        saved: dict[str, Any] = json.loads((checkpoint / PROGRESS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return saved


def _estimate(cfg: TrainConfig, tok: Any, rows: list[dict[str, Any]], device: str) -> float:
    """The whole round's time: the supervised estimate for the same tokens, times what a preference step adds."""
    def tokens(turns: list[dict[str, str]]) -> int:
        return sum(len(tok(t["content"], add_special_tokens=False)["input_ids"]) + 4 for t in turns)

    lengths = [tokens(r["prompt"]) * (2 if "chosen" in r else 1)
               + sum(tokens(r[k]) for k in ("chosen", "rejected", "completion") if k in r) for r in rows]
    started = process_started()
    seconds = in_run_seconds(cfg, lengths, device, world=1, process_start=started)
    since = time.time() - started
    return round(since + (seconds - since) * STEP_COST[cfg.method], 1)
