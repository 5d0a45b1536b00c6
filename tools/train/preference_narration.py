"""A preference round's Trainer told as our events: `Narration` turns TRL's steps, logs, evaluations and saves into
the same events.jsonl as a supervised run (start, step, eval, checkpoint, diagnosis), and a stop request into a
checkpoint and a clean `stopped`."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tools import jobs
from tools.fileio import atomic_write_json
from tools.train.config import TrainConfig
from tools.train.events import EventWriter
from tools.train.loop import DIAGNOSE_EVERY, Health, LiveEta, peak_memory_mb

PROGRESS = "mtw-progress.json"
"""In each checkpoint: the tokens, seconds and last losses so far, so a resumed run's totals cover the whole run."""


class Narration(TrainerCallback):
    """The Trainer's run told as events.jsonl: start, step, eval, checkpoint, diagnosis; stops on request."""

    def __init__(self, cfg: TrainConfig, run: Path, device: str, events: EventWriter, prior: list[dict[str, Any]],
                 data: Any, n_train: int, n_val: int, estimate_s: float, resume_note: str | None,
                 before: dict[str, Any]) -> None:
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
