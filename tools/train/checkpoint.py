"""Resumable checkpoints: trainable state, optimizer, schedule, RNG and step, written atomically with a checksum."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import signal
from pathlib import Path
from typing import Any

import torch

from tools.errors import UsageError, storage_error

KEEP = 2
"""Checkpoints kept on disk; older ones are deleted once a newer one is complete."""
STATE, CHECKSUM = "state.pt", "checksum.json"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Only the parameters being trained (LoRA and any trained head): small, and all a resume needs."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(run_dir: Path | str, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, extra: dict[str, Any] | None = None) -> Path:
    """Write RUN_DIR/checkpoints/step-NNNNNN with its checksum (complete or not at all) and prune old ones.

    A full or read-only disk raises one plain MTWError; the checkpoints already there stay usable.
    """
    root = Path(run_dir) / "checkpoints"
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    state = {
        "step": step, "model": trainable_state(model), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None, "extra": extra or {},
    }
    # serialised in memory first: a short write then surfaces as an OSError, not as torch's zip-writer error
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _write_synced(tmp / STATE, data)
        _write_synced(tmp / CHECKSUM, json.dumps({"sha256": hashlib.sha256(data).hexdigest(),
                                                  "bytes": len(data)}).encode())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise (storage_error(exc, root) or exc) from exc
    for old in sorted(root.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def damage(path: Path) -> str | None:
    """Why the checkpoint at PATH cannot be used (missing, truncated, checksum mismatch), or None if it is sound."""
    state = path / STATE
    if not state.is_file():
        return "its state file is missing"
    check = path / CHECKSUM
    if not check.is_file():
        # written before checksums existed: sound if it loads
        try:
            torch.load(state, map_location="cpu", weights_only=False)
        except Exception as exc:  # any unreadable pickle/zip is damage
            return f"it cannot be read ({type(exc).__name__})"
        return None
    try:
        expected = json.loads(check.read_text())
    except (OSError, ValueError):
        return "its checksum file is unreadable"
    data = state.read_bytes()
    if len(data) != expected.get("bytes"):
        return f"it is truncated ({len(data)} of {expected.get('bytes')} bytes)"
    if hashlib.sha256(data).hexdigest() != expected.get("sha256"):
        return "its checksum does not match (the file was damaged)"
    return None


def pick_checkpoint(run_dir: Path | str) -> tuple[Path | None, str | None]:
    """The newest sound checkpoint, and a sentence when newer ones were damaged and skipped (None if none were)."""
    found = sorted((p for p in (Path(run_dir) / "checkpoints").glob("step-*") if p.is_dir()), reverse=True)
    skipped: list[str] = []
    for path in found:
        why = damage(path)
        if why is None:
            note = (f"The newest checkpoint{'s' if len(skipped) > 1 else ''} ({'; '.join(skipped)}) could not be "
                    f"used, so training resumes from step {int(path.name.split('-')[1])} instead.") if skipped else None
            return path, note
        skipped.append(f"step {int(path.name.split('-')[1])}: {why}")
    if skipped:
        return None, f"No checkpoint could be used ({'; '.join(skipped)}), so training starts again from step 0."
    return None, None


def latest_checkpoint(run_dir: Path | str) -> Path | None:
    """The newest sound checkpoint folder, if any (damaged newer ones are skipped)."""
    return pick_checkpoint(run_dir)[0]


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict:
    """Restore everything `save_checkpoint` wrote; returns the state (step, extra)."""
    state = torch.load(path / STATE, map_location="cpu", weights_only=False)
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


def restore(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
            dataset_version: str, data: str) -> dict:
    """Restore a checkpoint for `--resume` and return its state; refuse when the dataset changed, since the data
    order would not match."""
    state = load_checkpoint(path, model, optimizer, scheduler)
    saved = state["extra"].get("dataset_version")
    if saved and saved != dataset_version:
        raise UsageError(f"{data} changed since this run started (version {saved}, now {dataset_version}); "
                         "resuming would not continue the same data order.",
                         fix="Restore the original file, or start a new run with another --out.")
    return state


def resume_from(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                dataset_version: str, data: str) -> int:
    """`restore`, returning only the step to continue from."""
    return int(restore(path, model, optimizer, scheduler, dataset_version, data)["step"])


class StopRequest:
    """Turns SIGTERM and Ctrl-C into a flag the loop checks between steps, so it can checkpoint and exit cleanly."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGTERM, signal.SIGINT):
            # not the main thread (e.g. inside a UI worker): no signal handling there
            with contextlib.suppress(ValueError):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
