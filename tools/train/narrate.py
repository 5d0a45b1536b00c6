"""What `mtw train` shows while a run trains: a live progress bar on a terminal, one plain line per event
otherwise (logs, the chat's background runs)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console

from tools.run_events import TERMINAL

PLAIN_EVERY = 10
"""In plain (non-terminal) output, print one line per this many steps."""


class Narrator:
    """Renders events: a rich progress bar on a terminal, one plain line per event otherwise (logs, the UI)."""

    def __init__(self, plain: bool) -> None:
        self.console = Console(stderr=False)
        self.plain = plain or not self.console.is_terminal
        self.progress: Any = None
        self.task: Any = None

    def __call__(self, ev: dict[str, Any]) -> None:
        kind = ev["type"]
        if kind == "start":
            self._start(ev)
        elif kind == "step":
            self._step(ev)
        elif kind == "eval":
            extra = "".join(f", {k.replace('_', ' ')} {ev[k]:.3f}" for k in ("accuracy", "f1", "reward_accuracy",
                                                                             "reward_margin") if k in ev)
            self._line(f"step {ev['step']}: validation loss {ev['val_loss']:.4f}{extra}")
        elif kind == "diagnosis":
            self._line(f"[yellow]! {ev['message']}[/] → {ev.get('fix_text') or ev.get('fix')}")
        elif kind == "checkpoint":
            self._line(f"checkpoint saved at step {ev['step']}", dim=True)
        elif kind in TERMINAL:
            self.close()

    def _start(self, ev: dict[str, Any]) -> None:
        resumed = f", resuming at step {ev['resumed_from']}" if ev.get("resumed_from") else ""
        if ev.get("method") in ("dpo", "kto"):
            since = f" from {ev['from_run']}" if ev.get("from_run") else ""
            self._line(f"{ev['method'].upper()} round on {ev['config']['model']}{since}: {ev['n_examples']} "
                       f"judgements ({ev.get('n_validation', 0)} held out) for {ev['total_steps']} steps on "
                       f"{ev['device']}{resumed}")
        else:
            self._line(f"training {ev['config']['model']} on {ev['n_examples']} examples "
                       f"({ev.get('n_validation', 0)} held out) for {ev['total_steps']} steps on "
                       f"{ev['device']}{resumed}")
        if ev.get("held_out_duplicates"):
            self._line(f"{ev['held_out_duplicates']} held-out row(s) left out: the very same row is in the training "
                       "data, so it would measure memory, not skill", dim=True)
        if ev.get("resume_note"):
            self._line(f"[yellow]! {ev['resume_note']}[/]")
        if ev.get("sharding") == "fsdp":
            self._line(f"the base model is sharded across the {ev['world_size']} processes (FSDP); each holds "
                       "its share of the weights and the whole adapter", dim=True)
        speed = describe_speed(ev.get("speed") or {})
        if speed:
            self._line(speed, dim=True)
        if self.plain:
            return
        from rich.progress import BarColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                 TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} tok/s"),
                                 TextColumn("ETA {task.fields[eta]}"), console=self.console)
        self.progress.start()
        self.task = self.progress.add_task("train", total=ev["total_steps"], completed=ev.get("resumed_from", 0),
                                           loss="…", speed="…", eta="…")

    def _step(self, ev: dict[str, Any]) -> None:
        if self.progress is not None:
            eta = ev.get("eta_s")
            self.progress.update(self.task, completed=ev["step"], loss=f"{ev['loss']:.4f}",
                                 speed=f"{ev['tokens_per_s']:.0f}",
                                 eta=time.strftime("%H:%M:%S", time.gmtime(eta)) if eta is not None else "…")
        elif ev["step"] % PLAIN_EVERY == 0 or ev["step"] == 1:
            eta = ev.get("eta_s")
            self.console.print(f"step {ev['step']}  loss {ev['loss']:.4f}  {ev['tokens_per_s']:.0f} tok/s"
                               + (f"  about {eta:.0f}s left" if eta is not None else ""), highlight=False)

    def _line(self, text: str, dim: bool = False) -> None:
        target = self.progress.console if self.progress is not None else self.console
        target.print(f"[dim]{text}[/]" if dim else text, highlight=False)

    def close(self) -> None:
        """Stop the live bar (before the summary is printed)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def describe_speed(speed: dict[str, Any]) -> str:
    """The start event's speed settings in one line ("" when there are none, as for a classifier)."""
    if not speed:
        return ""
    parts = ["compiled layers"] if speed.get("compile") else []
    if speed.get("row_multiple"):
        parts.append(f"rows rounded to {speed['row_multiple']} tokens")
    ckpt = speed.get("checkpointing")
    budget = speed.get("memory_budget_mb", 0) / 1024
    if ckpt == "auto":
        parts.append(f"gradient checkpointing where a step would exceed {budget:.1f} GB")
    elif ckpt is True:
        parts.append("gradient checkpointing on every step")
    if speed.get("autocast"):
        parts.append("bf16 arithmetic")
    if speed.get("fused_adamw"):
        parts.append("fused AdamW")
    return "speed: " + ", ".join(parts) if parts else ""

