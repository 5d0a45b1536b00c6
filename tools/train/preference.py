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
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tools.errors import MTWError, UsageError, is_out_of_memory, storage_error
from tools.train.config import TrainConfig, load_run_config, reproduce_command, save_run_config
from tools.train.events import EventWriter, Listener, read_events

CHECKPOINTS = "checkpoints"
PROGRESS = "mtw-progress.json"
"""In each checkpoint: the tokens, seconds and last losses so far, so a resumed run's totals cover the whole run."""
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
    from tools import jobs
    from tools.train.loop import Health, crashed_event, failed_event

    run = Path(run_dir)
    if resume:
        cfg = load_run_config(run)
    elif (run / "events.jsonl").exists():
        raise UsageError(f"{run} already holds a training run.",
                         fix="Continue it with --resume, or choose a new folder with --out.")
    run.mkdir(parents=True, exist_ok=True)
    events = EventWriter(run, listener)
    prior = read_events(run) if resume else []
    if any(e.get("type") == "done" for e in prior):
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
    from tools.train.bases import record_base, run_entry, weights_source
    from tools.train.catalog import resolve
    from tools.train.modeling import apply_lora, load_base, lora_settings

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
    from tools.train.modeling import pick_dtype

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

    from tools.train.checkpoint import StopRequest
    from tools.train.inputs import load_split, read_training_data, save_split
    from tools.train.loop import save_adapter
    from tools.train.pairs import dpo_rows, kto_rows

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
    from tools.train.timing import in_run_seconds, process_started

    def tokens(turns: list[dict[str, str]]) -> int:
        return sum(len(tok(t["content"], add_special_tokens=False)["input_ids"]) + 4 for t in turns)

    lengths = [tokens(r["prompt"]) * (2 if "chosen" in r else 1)
               + sum(tokens(r[k]) for k in ("chosen", "rejected", "completion") if k in r) for r in rows]
    started = process_started()
    seconds = in_run_seconds(cfg, lengths, device, world=1, process_start=started)
    since = time.time() - started
    return round(since + (seconds - since) * STEP_COST[cfg.method], 1)


# ---------------------------------------------------------------- train: the Trainer's steps as our events


class Narration(TrainerCallback):
    """The Trainer's run told as events.jsonl: start, step, eval, checkpoint, diagnosis; stops on request."""

    def __init__(self, cfg: TrainConfig, run: Path, device: str, events: EventWriter, prior: list[dict[str, Any]],
                 data: Any, n_train: int, n_val: int, estimate_s: float, resume_note: str | None,
                 before: dict[str, Any]) -> None:
        from tools.train.loop import Health, LiveEta

        self.cfg, self.run, self.device, self.events, self.data = cfg, run, device, events, data
        self.n_train, self.n_val, self.estimate_s, self.resume_note = n_train, n_val, estimate_s, resume_note
        self.health = Health(events, prior, n_train, device)
        self.eta = LiveEta(cfg.eval_every if n_val else 0, cfg.checkpoint_every)
        self.stop: Any = None
        self.stopped = False
        self.nan_at: int | None = None
        self.started = time.monotonic() - float(before.get("seconds", 0.0))
        self.tokens = int(before.get("tokens", 0))
        self.last: dict[str, Any] = dict(before.get("last") or {})
        self.seen_tokens: float | None = None
        self.t_step = time.monotonic()

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        from tools import jobs

        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        self.total_steps = state.max_steps
        self.events.emit("start", estimate_s=self.estimate_s, config=self.cfg.model_dump(mode="json"),
                         n_examples=self.n_train, n_validation=self.n_val, total_steps=state.max_steps,
                         device=self.device, world_size=1, sharding="none", resumed_from=state.global_step,
                         trainable_params=trainable, total_params=total, dataset_version=self.data.version,
                         held_out_duplicates=len(self.data.dropped_rows), pid=os.getpid(), speed={},
                         method=self.cfg.method, judgements=self.n_train + self.n_val,
                         from_run=self.cfg.from_run, **({"resume_note": self.resume_note} if self.resume_note else {}))
        jobs.record_start(self.run, self.cfg, dataset_version=self.data.version, pid=os.getpid())

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.t_step = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        last = state.global_step >= state.max_steps
        if last and self.n_val:
            control.should_evaluate = True  # the final numbers, like a supervised run's last evaluation
        if self.stop is not None and self.stop.requested and not last:
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        from tools.train.loop import DIAGNOSE_EVERY, peak_memory_mb

        logs = logs or {}
        step = state.global_step
        if "eval_loss" in logs:
            extra = _preference_metrics(logs, "eval_")
            self.last.update({"val_loss": logs["eval_loss"], **extra})
            self.events.emit("eval", step=step, val_loss=round(float(logs["eval_loss"]), 5), **extra)
            self.health.check()
            return
        if "loss" not in logs:
            return  # the Trainer's closing summary
        elapsed = time.monotonic() - self.t_step
        seen = float(logs.get("num_tokens", 0.0))
        # TRL counts tokens from zero in each process; a resumed run starts counting again
        tokens = int(seen - self.seen_tokens) if self.seen_tokens is not None and seen >= self.seen_tokens \
            else int(seen)
        self.seen_tokens = seen
        self.tokens += tokens
        loss = float(logs["loss"])
        extra = _preference_metrics(logs, "")
        self.last.update({"train_loss": loss, **extra})
        if not math.isfinite(loss):
            self.nan_at = step
            control.should_training_stop = True
        self.events.emit("step", step=step, epoch=round(float(logs.get("epoch", state.epoch or 0.0)), 3),
                         loss=round(loss, 5) if math.isfinite(loss) else loss,
                         lr=float(logs.get("learning_rate", 0.0)),
                         tokens_per_s=round(tokens / max(elapsed, 1e-9), 1),
                         eta_s=self.eta.after_step(elapsed, step, state.max_steps, tokens),
                         peak_mem_mb=peak_memory_mb(self.device), **extra)
        if step % DIAGNOSE_EVERY == 0:
            self.health.check()

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        from tools.fileio import atomic_write_json

        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        atomic_write_json(path / PROGRESS, {"tokens": self.tokens, "seconds": time.monotonic() - self.started,
                                            "last": self.last})
        self.events.emit("checkpoint", step=state.global_step, path=str(path))

    def metrics(self, step: int, epoch: float) -> dict[str, Any]:
        """The done event's numbers: the supervised ones, then the preference ones from the last evaluation."""
        def num(key: str) -> float | None:
            value = self.last.get(key)
            return None if value is None else round(float(value), 5)

        return {"train_loss": num("train_loss"), "val_loss": num("val_loss"), "steps": step, "epochs": round(epoch, 3),
                "tokens": self.tokens, "seconds": round(time.monotonic() - self.started, 1),
                "reward_accuracy": num("reward_accuracy"), "reward_margin": num("reward_margin"),
                "judgements": self.n_train + self.n_val, "method": self.cfg.method}


def _preference_metrics(logs: dict[str, Any], prefix: str) -> dict[str, float]:
    """TRL's reward numbers under plain names: how often the chosen answer wins and by how much."""
    names = {"rewards/accuracies": "reward_accuracy", "rewards/margins": "reward_margin",
             "rewards/chosen": "reward_chosen", "rewards/rejected": "reward_rejected", "kl": "kl"}
    return {ours: round(float(logs[prefix + theirs]), 5) for theirs, ours in names.items()
            if isinstance(logs.get(prefix + theirs), int | float) and math.isfinite(logs[prefix + theirs])}
