"""Resumable checkpoints: trainable weights, optimizer, schedule, random state and the step, written atomically."""

from __future__ import annotations

import os
import random
import shutil
import signal
from pathlib import Path
from typing import Any

import torch

KEEP = 2
"""Checkpoints kept on disk; older ones are deleted once a newer one is complete."""


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Only the parameters being trained (LoRA and any trained head): small, and all a resume needs."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(run_dir: Path | str, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, extra: dict[str, Any] | None = None) -> Path:
    """Write RUN_DIR/checkpoints/step-NNNNNN (complete or not at all) and prune old ones."""
    root = Path(run_dir) / "checkpoints"
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {
        "step": step, "model": trainable_state(model), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None, "extra": extra or {},
    }
    torch.save(state, tmp / "state.pt")
    with open(tmp / "state.pt", "rb") as f:
        os.fsync(f.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in sorted(root.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path | str) -> Path | None:
    """The newest complete checkpoint folder, if any."""
    done = sorted(p for p in (Path(run_dir) / "checkpoints").glob("step-*") if (p / "state.pt").is_file())
    return done[-1] if done else None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict:
    """Restore everything `save_checkpoint` wrote; returns the state (step, extra)."""
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["model"].items():
            params[name].copy_(value.to(params[name].device))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state


def resume_from(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                dataset_version: str, data: str) -> int:
    """Restore a checkpoint for `--resume`; refuse when the dataset changed, since the data order would not match."""
    from tools.errors import UsageError

    state = load_checkpoint(path, model, optimizer, scheduler)
    saved = state["extra"].get("dataset_version")
    if saved and saved != dataset_version:
        raise UsageError(f"{data} changed since this run started (version {saved}, now {dataset_version}); "
                         "resuming would not continue the same data order.",
                         fix="Restore the original file, or start a new run with another --out.")
    return int(state["step"])


class StopRequest:
    """Turns SIGTERM and Ctrl-C into a flag the loop checks between steps, so it can checkpoint and exit cleanly."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. inside a UI worker): no signal handling there
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
