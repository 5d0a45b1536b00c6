"""Health monitor: read a run's event stream and say in plain words what is going wrong, with a fix.

`diagnose(events)` is pure: it takes the DESIGN.md events (`start`, `step`, `eval`, `failed`, ...)
and returns at most one `Diagnosis` per code. The training loop calls it as it runs and writes each
new diagnosis as a `diagnosis` event; the UI offers `fix` (TrainConfig overrides) as a one-click change.

Thresholds (constants below, each with the reason for its value):
- flat_loss: over >= 20 steps the loss fell less than 1 % from its start, or by no more than noise explains.
- diverging: after >= 10 steps the smoothed loss climbed 30 % above its lowest point.
- nan_loss: any step loss that is NaN or infinite, or a `failed` event with that code.
- overfitting: the last two validation losses sit above the best one, the last by 10 % or more,
  while the training loss kept falling.
- memorizing: the smoothed training loss is under 0.05 (the model predicts its examples ~95 % surely).
- oom: a `failed` event with code `oom` or "out of memory" in its message.
- too_slow: more than 8 hours still to go, or a tokens/s rate below the device's floor with 30+ minutes to go.
- too_few_examples: fewer than 20 training examples (the guide's minimum for varied behaviour).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]

# a few noisy steps say nothing about a trend; 20 is a short first run with the default presets
FLAT_MIN_STEPS = 20
# a learning run drops more than 1 % over its first 20 steps, even a slow one (tiny-random at 2e-4: ~3 %)
FLAT_MIN_DROP = 0.01
# ... and by more than the noise could explain: 3 standard deviations of the difference of two window means
FLAT_SIGMAS = 3.0
# early steps swing with warm-up; judge divergence only after these
DIVERGE_MIN_STEPS = 10
# smoothed loss 30 % above its best is past noise (healthy curves wobble a few %)
DIVERGE_RISE = 1.30
# validation must end this far above its best before we call it overfitting, not noise
OVERFIT_RISE = 0.10
# above this a LoRA update overshoots (the guide's ceiling, also the encoders' default)
MAX_LR = 1e-3
# mean cross-entropy under 0.05 nats per token = the model is ~95 % sure of every token it saw
MEMORIZE_LOSS = 0.05
# the guide asks for at least 20 varied examples before training makes sense
MIN_EXAMPLES = 20
# below this a LoRA run on the device is stalled or swapping (a small model does 10x more)
MIN_TOKENS_PER_S = {"cuda": 500.0, "mps": 100.0, "cpu": 20.0}
# a run a PM starts before lunch should finish the same day
MAX_RUN_SECONDS = 8 * 3600
# a crawling rate is worth a warning only when this much is still to go (a short run just finishes)
SLOW_MIN_ETA = 30 * 60
# the run we suggest instead when too slow: about two hours at the measured speed
TARGET_RUN_SECONDS = 2 * 3600
# the guide's defaults, used when the start event does not tell us the run's own values
DEFAULTS: dict[str, Any] = {
    "learning_rate": 2e-4, "batch_size": 4, "grad_accum": 1, "epochs": 3,
    "context": 4096, "gradient_checkpointing": "auto",
}


@dataclass
class Diagnosis:
    """One problem with a training run: what, why, and a config change that addresses it."""

    code: str
    """A DESIGN.md diagnosis code, e.g. `flat_loss`."""
    severity: Severity
    """`error` stops the run from being useful, `warning` hurts it, `info` is worth knowing."""
    message: str
    """What is happening, in words a product manager understands."""
    why: str
    """Why it usually happens."""
    fix: dict[str, Any]
    """TrainConfig overrides the wizard can apply with one click (may be empty)."""
    fix_text: str
    """The fix in plain words, including anything that is not a config change."""

    def as_event(self) -> dict[str, Any]:
        """A `diagnosis` event for events.jsonl (DESIGN.md: type, code, message, fix)."""
        return {"type": "diagnosis", **asdict(self)}


def run_config(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's settings as far as the events tell (the `start` event's config), else the defaults."""
    cfg = dict(DEFAULTS)
    wanted = {*DEFAULTS, "max_steps", "lora_dropout", "warmup_ratio", "device", "n_examples", "method"}
    for ev in events:
        if ev.get("type") == "start":
            inner = ev.get("config")
            # the training job puts the TrainConfig under `config` and run facts (device, n_examples) beside it
            for source in (ev, inner if isinstance(inner, dict) else {}):
                cfg.update({k: v for k, v in source.items() if k in wanted and v is not None})
    return cfg


def _smooth(values: list[float]) -> list[float]:
    """Trailing moving average; the window grows with the run so long runs are not jumpy."""
    w = max(3, min(20, len(values) // 5))
    return [statistics.fmean(values[max(0, i - w + 1): i + 1]) for i in range(len(values))]


def _lr(steps: list[dict[str, Any]], events: list[dict[str, Any]]) -> float:
    """The run's learning rate: the configured peak when the run says it, else the peak seen (warm-up makes the
    latest one misleading), else the default."""
    seen = [float(s["lr"]) for s in steps if isinstance(s.get("lr"), int | float) and s["lr"] > 0]
    given = [float(ev["config"]["learning_rate"]) for ev in events if ev.get("type") == "start"
             and isinstance(ev.get("config"), dict) and isinstance(ev["config"].get("learning_rate"), int | float)]
    return max(given + seen) if given or seen else float(DEFAULTS["learning_rate"])


def _nice(x: float) -> float:
    """Round a learning rate to one significant digit, the way people write them (3e-4)."""
    return float(f"{x:.0e}")


def _lr_text(x: float) -> str:
    """A learning rate as people write it: 3e-4, not 0.0003."""
    mantissa, exp = f"{x:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exp)}"


def _check_nan(steps: list[dict[str, Any]], failed: list[dict[str, Any]], lr: float, warm: bool
               ) -> Diagnosis | None:
    bad = [s for s in steps if isinstance(s.get("loss"), int | float) and not math.isfinite(s["loss"])]
    if not bad and not any(f.get("code") == "nan_loss" for f in failed):
        return None
    where = f" at step {bad[0].get('step')}" if bad else ""
    new_lr = _nice(min(lr / 4, 1e-4))
    return Diagnosis(
        "nan_loss", "error",
        f"The training loss became 'not a number'{where}: the model's numbers blew up and it stopped learning.",
        "The learning rate is too high for this model or data, or an example is empty or broken.",
        {"learning_rate": new_lr, "warmup_ratio": 0.1},
        f"Lower the learning rate to {_lr_text(new_lr)}{' with a 10 % warm-up' if warm else ''} and start again; "
        "run `mtw check` on the data.",
    )


def _check_diverging(losses: list[float], lr: float, warm: bool) -> Diagnosis | None:
    if len(losses) < DIVERGE_MIN_STEPS:
        return None
    sm = _smooth(losses)
    best = min(sm[: len(sm) - 1])
    if not (sm[-1] > best * DIVERGE_RISE and sm[-1] > sm[0]):
        return None
    new_lr = _nice(lr / 3)
    return Diagnosis(
        "diverging", "error",
        f"The training loss is going up instead of down (from {best:.2f} to {sm[-1]:.2f}): the model is getting "
        "worse at your examples.",
        "The learning rate is too high: each update overshoots, so the model forgets what it had learned.",
        {"learning_rate": new_lr, "warmup_ratio": 0.1},
        f"Restart with a lower learning rate ({_lr_text(new_lr)} instead of {_lr_text(lr)})"
        + (" and a 10 % warm-up." if warm else "."),
    )


def _check_flat(losses: list[float], lr: float, cfg: dict[str, Any]) -> Diagnosis | None:
    if len(losses) < FLAT_MIN_STEPS:
        return None
    w = max(3, len(losses) // 5)
    first, last = statistics.fmean(losses[:w]), statistics.fmean(losses[-w:])
    # step-to-step noise (differences cancel a steady trend); two window means differ by noise * sqrt(2 / w)
    noise = statistics.pstdev([b - a for a, b in zip(losses, losses[1:], strict=False)]) / math.sqrt(2)
    needed = max(FLAT_MIN_DROP * first, FLAT_SIGMAS * noise * math.sqrt(2 / w))
    if last < MEMORIZE_LOSS or first - last >= needed:
        return None
    message = (f"The training loss has hardly moved in {len(losses)} steps ({first:.2f} → {last:.2f}): "
               "the model is not learning from your examples.")
    new_lr = _nice(3e-4 if lr < 3e-4 else min(lr * 2, MAX_LR))
    if new_lr > lr * 1.2:
        return Diagnosis(
            "flat_loss", "warning", message,
            "The learning rate is too low, or the examples are too few, too alike or inconsistent with each other.",
            {"learning_rate": new_lr},
            f"Raise the learning rate to {_lr_text(new_lr)}; check the data (`mtw check`) and use at least 20 varied "
            "examples.",
        )
    # the rate is already as high as is safe: raising it again would be no advice at all
    longer = _longer(cfg, len(losses))
    return Diagnosis(
        "flat_loss", "warning", message,
        f"The learning rate is already {_lr_text(lr)}, as high as is safe; the run may be too short to get past the "
        "easy answer (for a classifier: always the commonest label), or the examples disagree with each other.",
        longer,
        f"Keep the learning rate at {_lr_text(lr)} and train longer ({_describe(longer)}); check the data "
        "(`mtw check`): add examples of the rarer labels or kinds of request, and fix rows that contradict each "
        "other.",
    )


def _longer(cfg: dict[str, Any], steps_run: int) -> dict[str, Any]:
    """Twice the training: twice the steps when the run is capped, else twice the epochs."""
    if cfg.get("max_steps"):
        return {"max_steps": max(int(cfg["max_steps"]), steps_run) * 2}
    return {"epochs": float(cfg["epochs"]) * 2}


def _describe(fix: dict[str, Any]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {_lr_text(v) if k == 'learning_rate' else f'{v:g}'}"
                     for k, v in fix.items())


def _epoch_at(steps: list[dict[str, Any]], step: Any) -> float | None:
    """The epoch of the step event nearest at or before `step`."""
    before = [s for s in steps if isinstance(s.get("step"), int) and isinstance(step, int) and s["step"] <= step
              and isinstance(s.get("epoch"), int | float)]
    return float(before[-1]["epoch"]) if before else None


def _check_overfit(steps: list[dict[str, Any]], evals: list[dict[str, Any]], cfg: dict[str, Any]) -> Diagnosis | None:
    vals = [(e.get("step"), float(e["val_loss"])) for e in evals
            if isinstance(e.get("val_loss"), int | float) and math.isfinite(e["val_loss"])]
    if len(vals) < 3:
        return None
    i_best = min(range(len(vals)), key=lambda i: vals[i][1])
    best_step, best = vals[i_best]
    if i_best > len(vals) - 3 or vals[-1][1] < best * (1 + OVERFIT_RISE) or vals[-2][1] <= best:
        return None
    # the tell of overfitting is that training keeps improving while validation worsens
    def train_near(step: Any) -> float | None:
        ls = [float(s["loss"]) for s in steps if isinstance(s.get("step"), int) and isinstance(step, int)
              and s["step"] <= step and isinstance(s.get("loss"), int | float) and math.isfinite(s["loss"])]
        return statistics.fmean(ls[-3:]) if ls else None

    t_best, t_last = train_near(best_step), train_near(vals[-1][0])
    if t_best is None or t_last is None or t_last >= t_best:
        return None
    epoch = _epoch_at(steps, best_step)
    epochs = max(1, math.ceil(epoch)) if epoch else max(1, int(cfg["epochs"]) - 1)
    fix = _changed({"epochs": epochs, "lora_dropout": 0.1}, cfg)
    return Diagnosis(
        "overfitting", "warning",
        f"The model keeps improving on its training examples but is getting worse on examples it has not seen "
        f"(validation loss {best:.2f} at its best, now {vals[-1][1]:.2f}).",
        "It has started to learn your training examples by heart instead of the pattern behind them: too many "
        "epochs for this amount of data.",
        fix,
        (f"Train with {_describe(fix)} (epochs: where validation was best), or add more varied examples." if fix
         else "Add more varied examples, or stop at the checkpoint where validation was best."),
    )


def _check_memorizing(losses: list[float], steps: list[dict[str, Any]], cfg: dict[str, Any]) -> Diagnosis | None:
    if len(losses) < 3:
        return None
    sm = _smooth(losses)
    if sm[-1] >= MEMORIZE_LOSS:
        return None
    crossed = next(i for i, v in enumerate(sm) if v < MEMORIZE_LOSS)
    epoch = steps[crossed].get("epoch")
    epochs = max(1, int(epoch)) if isinstance(epoch, int | float) else 1
    fix = _changed({"epochs": epochs, "lora_dropout": 0.1}, cfg)
    return Diagnosis(
        "memorizing", "warning",
        f"The training loss is almost zero ({sm[-1]:.3f}): the model can recite your examples word for word, "
        "and will likely copy them instead of writing new text.",
        "Too many epochs or too high a learning rate for a small dataset; the model memorises instead of generalising.",
        fix,
        (f"Train with {_describe(fix)}, and add more diverse examples." if fix
         else "Add more diverse examples, and stop at an earlier checkpoint."),
    )


def _check_oom(failed: list[dict[str, Any]], cfg: dict[str, Any]) -> Diagnosis | None:
    hit = [f for f in failed if f.get("code") == "oom" or "out of memory" in str(f.get("message", "")).lower()]
    if not hit:
        return None
    batch = int(cfg["batch_size"])
    new_batch = max(1, min(2, batch // 2))
    # keep the effective batch (batch x accumulation) so the learning dynamics stay the same
    accum = max(1, int(cfg["grad_accum"]) * batch // new_batch)
    fix: dict[str, Any] = {"batch_size": new_batch, "grad_accum": accum, "gradient_checkpointing": True}
    if int(cfg["context"]) > 2048:
        fix["context"] = 2048
    fix = _changed(fix, cfg)
    same_learning = f"use batch size {new_batch} with {accum} accumulation steps (same learning)"
    parts = [same_learning] if "batch_size" in fix else []
    parts += ["turn on gradient checkpointing"] if fix.get("gradient_checkpointing") else []
    parts += ["shorten the context to 2048 tokens"] if "context" in fix else []
    # with every memory saver already set, repeating them would be no advice
    text = ", ".join(parts) if parts else ("batch size 1, gradient checkpointing and a short context are already "
                                           "set: use a smaller base model or 4-bit loading (--set four_bit=true)")
    text = text[0].upper() + text[1:]
    return Diagnosis(
        "oom", "error",
        "Training ran out of memory: the model, its optimizer and one batch of examples did not fit.",
        "The batch size or the context length is too large for this machine's memory, or other apps are using it.",
        fix, text + "; close other apps.",
    )


def _check_slow(steps: list[dict[str, Any]], device: str, cfg: dict[str, Any]) -> Diagnosis | None:
    # skip the first steps: they include compilation, caching and warm-up
    settled = steps[2:] if len(steps) > 4 else []
    tps = [float(s["tokens_per_s"]) for s in settled[-5:] if isinstance(s.get("tokens_per_s"), int | float)]
    etas = [float(s["eta_s"]) for s in settled[-3:] if isinstance(s.get("eta_s"), int | float)]
    if not etas:
        return None
    eta = statistics.median(etas)
    floor = MIN_TOKENS_PER_S.get(device, MIN_TOKENS_PER_S["cpu"])
    # a low rate only matters when there is a lot left to do (short classifier texts give low rates too)
    crawling = bool(tps) and statistics.median(tps) < floor and eta > SLOW_MIN_ETA
    if not (eta > MAX_RUN_SECONDS or crawling):
        return None
    fix: dict[str, Any] = {}
    timed = [s for s in settled if isinstance(s.get("ts"), int | float) and isinstance(s.get("step"), int)]
    if len(timed) >= 2 and timed[-1]["step"] > timed[0]["step"]:
        per_step = (timed[-1]["ts"] - timed[0]["ts"]) / (timed[-1]["step"] - timed[0]["step"])
        if per_step > 0:
            fix["max_steps"] = max(10, int(TARGET_RUN_SECONDS / per_step))
    if int(cfg["context"]) > 2048:
        fix["context"] = 2048
    if cfg.get("gradient_checkpointing") is True:
        fix["gradient_checkpointing"] = "auto"  # recompute only the steps that need it
    left = f"about {eta / 3600:.0f} hours" if eta >= 5400 else f"about {eta / 60:.0f} minutes"
    rate = f"about {statistics.median(tps):.0f} tokens per second, " if tps else ""
    return Diagnosis(
        "too_slow", "warning",
        f"Training is too slow for this machine: {rate}{left} still to go.",
        "The model is large for this hardware, the context is long, or the machine is swapping memory "
        + ("(no GPU was found)." if device == "cpu" else "."),
        fix,
        "Cap the run" + (f" at {fix['max_steps']} steps (about two hours)" if "max_steps" in fix else "")
        + ", use a shorter context or a smaller base model, or train on a machine with a GPU.",
    )


def _check_few(n_examples: int | None, lr: float, cfg: dict[str, Any]) -> Diagnosis | None:
    if n_examples is None or n_examples >= MIN_EXAMPLES:
        return None
    gentle = _changed({"learning_rate": _nice(min(lr, 1e-4)), "epochs": 2}, cfg)
    if cfg.get("method") in ("dpo", "kto"):
        return Diagnosis(
            "too_few_examples", "warning",
            f"Only {n_examples} judgements to learn from: this round nudges the model rather than teaching it.",
            "A preference round learns what your judgements have in common; a dozen say little about that.",
            {}, "Rate more answers in Try it (👍 / 👎, or which of two is better): about 50 make the effect "
                "reliable.")
    return Diagnosis(
        "too_few_examples", "warning",
        f"Only {n_examples} training examples: too few for the model to pick up your style reliably.",
        "With a handful of examples the model either learns nothing or copies them; the guide asks for at least 20 "
        "varied examples, 50–100 for a first round.",
        gentle,
        f"Add examples (at least {MIN_EXAMPLES}, ideally 50–100 covering each kind of request)"
        + (f"; meanwhile train gently: {_describe(gentle)}." if gentle else "."),
    )


def _changed(fix: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """Only the settings the fix would really change: advice never repeats the value already set."""
    return {k: v for k, v in fix.items() if cfg.get(k) != v}


def diagnose(
    events: list[dict[str, Any]], *, n_examples: int | None = None, device: str | None = None
) -> list[Diagnosis]:
    """Every problem the event stream shows, most serious first, one Diagnosis per code."""
    cfg = run_config(events)
    steps = [e for e in events if e.get("type") == "step"]
    evals = [e for e in events if e.get("type") == "eval"]
    failed = [e for e in events if e.get("type") == "failed"]
    losses = [float(s["loss"]) for s in steps if isinstance(s.get("loss"), int | float)]
    finite = [x for x in losses if math.isfinite(x)]
    finite_steps = [s for s in steps if isinstance(s.get("loss"), int | float) and math.isfinite(s["loss"])]
    lr = _lr(steps, events)
    cfg["learning_rate"] = lr
    # 0 means "not known here" (a job that failed before counting); a real empty dataset never starts training
    n = n_examples or cfg.get("n_examples")
    dev = device or str(cfg.get("device") or "cpu").split(":")[0]
    # a warm-up is advised only to a run that has less of one
    warm = float(cfg.get("warmup_ratio") or 0) < 0.1
    nan = _check_nan(steps, failed, lr, warm)
    # a NaN curve says nothing reliable about trends, and a rising curve is not merely flat
    diverging = None if nan else _check_diverging(finite, lr, warm)
    found = [
        nan,
        _check_oom(failed, cfg),
        diverging,
        None if nan or diverging else _check_flat(finite, lr, cfg),
        _check_overfit(finite_steps, evals, cfg),
        _check_memorizing(finite, finite_steps, cfg),
        _check_slow(steps, dev, cfg),
        _check_few(n if isinstance(n, int) else None, lr, cfg),
    ]
    order = {"error": 0, "warning": 1, "info": 2}
    kept = sorted((d for d in found if d is not None), key=lambda d: order[d.severity])
    for d in kept:
        d.fix = _changed(d.fix, cfg)
    return kept
