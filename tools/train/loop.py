"""What every training loop shares (text generators, classifiers, preference rounds): the learning-rate schedule,
health checks on the events so far, the time left from the run's own steps, the final `failed` event, peak memory
and the saved adapter."""

from __future__ import annotations

import math
import os
import resource
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

import torch

from tools.errors import MTWError
from tools.train.events import EventWriter
from tools.troubleshoot.monitor import diagnose

DIAGNOSE_EVERY = 10
"""Steps between health checks (also run at each evaluation)."""


def lr_lambda(total: int, warmup: int):  # noqa: ANN201 - a closure for LambdaLR
    """Linear warm-up, then cosine decay to zero over the rest of the run."""

    def at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return at


def peak_memory_mb(device: str) -> float:
    """Peak memory of this process: GPU allocations on CUDA, resident set size on CPU."""
    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Health:
    """Runs the health monitor on the events so far and emits each new diagnosis once per run."""

    def __init__(self, events: EventWriter, prior: list[dict[str, Any]], n_examples: int | None,
                 device: str) -> None:
        self.events, self.prior, self.n, self.device = events, prior, n_examples, device

    def check(self) -> None:
        """Emit the diagnoses not yet reported (in this session or before a resume)."""
        so_far = self.prior + self.events.history
        seen = {e.get("code") for e in so_far if e.get("type") == "diagnosis"}
        for d in diagnose(so_far, n_examples=self.n, device=self.device.split(":")[0]):
            if d.code not in seen:
                seen.add(d.code)
                self.events.emit("diagnosis", **{k: v for k, v in d.as_event().items() if k != "type"})


def failed_event(events: EventWriter, exc: MTWError) -> dict[str, Any]:
    """The `failed` event for EXC; when even that cannot be written (a full disk), it goes to stderr instead."""
    try:
        return events.emit("failed", code=exc.code, message=exc.message, fix=exc.fix)
    except OSError:
        print(f"{exc.message} {exc.fix}", file=sys.stderr)
        return {"type": "failed", "code": exc.code, "message": exc.message, "fix": exc.fix}


class LiveEta:
    """Time left, from this run's own measured steps: the mean step after the first (which pays one-off
    costs such as compilation), plus the evaluations and checkpoints still to come at their measured cost.

    Until the first evaluation is measured, its cost is guessed from the steps' time per token: an evaluation
    of `val_tokens` runs the forward pass only, about a third of a training step's work per token.
    """

    FORWARD_SHARE = 1 / 3

    def __init__(self, eval_every: int, checkpoint_every: int, val_tokens: int = 0) -> None:
        self.eval_every, self.checkpoint_every, self.val_tokens = eval_every, checkpoint_every, val_tokens
        self.times: list[float] = []
        self.tokens: list[int] = []
        self.eval_s: float | None = None
        self.save_s = 0.0

    def after_step(self, seconds: float, step: int, total: int, tokens: int = 0) -> float:
        """Seconds left after `step` of `total`, given that step took `seconds` for `tokens` tokens."""
        self.times.append(seconds)
        self.tokens.append(tokens)
        steady = self.times[1:] or self.times
        eval_s = self.eval_s
        if eval_s is None:
            steady_tokens = self.tokens[1:] or self.tokens
            eval_s = self.val_tokens * sum(steady) / max(1, sum(steady_tokens)) * self.FORWARD_SHARE
        left = total - step
        # evaluations at each multiple of eval_every still to come and at the last step; checkpoints likewise,
        # then the adapter
        evals = (total // self.eval_every - step // self.eval_every + (1 if total % self.eval_every else 0)
                 if self.eval_every else 0)
        saves = total // self.checkpoint_every - step // self.checkpoint_every + 1
        return round(sum(steady) / len(steady) * left + evals * eval_s + saves * self.save_s, 1)


def crashed_event(events: EventWriter, exc: BaseException, run: Path) -> dict[str, Any]:
    """An unforeseen error: the details go to the log (stderr), the event says what to do."""
    traceback.print_exc(file=sys.stderr)
    return events.emit("failed", code="crash", message=f"Training stopped unexpectedly: {exc}.",
                       fix=f"See {run / 'train.log'} (for a background run) or the output above for details; "
                           "--resume continues from the last checkpoint.")


def save_adapter(model: Any, tokenizer: Any, adapter: Path, adapters: list[str] | None = None) -> None:
    """Write adapter_model.safetensors, adapter_config.json and the tokenizer files, replacing any older adapter.

    `adapters`: only these of the model's adapters (a preference round also holds a frozen reference copy).
    """

    tmp = adapter.with_name(".adapter.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True,
                          **({"selected_adapters": adapters} if adapters is not None else {}))
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(adapter, ignore_errors=True)
    os.replace(tmp, adapter)

