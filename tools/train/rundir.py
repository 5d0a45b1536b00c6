"""The folder `mtw train --out` writes into: new, empty, or a run of ours — never a folder of someone's own files."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from tools.errors import UsageError
from tools.run_events import finished
from tools.train.config import reproduce_command, save_run_config
from tools.train.events import read_events

if TYPE_CHECKING:
    from tools.train.config import TrainConfig

RUN_NAMES = frozenset({"config.yaml", "events.jsonl", "split.json", "base.json", "dataset.jsonl", "train.log",
                       "checkpoints", "adapter", ".adapter.tmp", "eval", "export"})
"""Everything a run writes at the top of its folder (RUN_DIR in DESIGN.md)."""
LAUNCHER_NAMES = frozenset({"train.log"})
"""What the chat's launcher writes before `mtw train` starts (appended to, never replaced)."""
SHOWN = 3


def is_run(folder: Path) -> bool:
    """True for a folder `mtw train` made: it has events, or the config whose first line is the command."""
    if (folder / "events.jsonl").is_file():
        return True
    try:
        with open(folder / "config.yaml", encoding="utf-8") as f:
            return f.readline().startswith("# mtw train ")
    except (OSError, UnicodeDecodeError):
        return False


def with_max_steps(out: Path, cfg: TrainConfig, max_steps: int) -> TrainConfig:
    """`--resume --max-steps N`: the run goes on to step N, and its config.yaml says so from now on (the schedule
    stretches to the new end). Refused in a sentence when the run has finished or is already past N."""
    events = read_events(out)
    if finished(events):
        raise UsageError(f"{out} has already finished, so --max-steps {max_steps} cannot make it longer.",
                         "To train more, start a new run with another --out (the same data and settings).")
    reached = max((int(e["step"]) for e in events if e.get("type") == "checkpoint"), default=0)
    if max_steps <= reached:
        raise UsageError(f"{out} has trained {reached} steps already, so --max-steps {max_steps} would train "
                         "nothing more.", f"Give more than {reached} (e.g. --max-steps {reached + 10}), or leave "
                                          "--max-steps out to finish as planned.")
    if cfg.max_steps != max_steps:
        cfg = cfg.model_copy(update={"max_steps": max_steps})
        save_run_config(out, cfg, reproduce_command(cfg, out))
    return cfg


def check_out(out: Path) -> None:
    """Refuse (in a sentence) an --out for a new run that holds files a run did not write: a run replaces its
    adapter/ and split.json, so a user's own files of those names would be lost."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder.",
                         f"Give a folder for the run, e.g. --out {shlex.quote(f'{out}-run')}.")
    names = sorted(p.name for p in out.iterdir())
    if not set(names) - LAUNCHER_NAMES or (is_run(out) and set(names) <= RUN_NAMES):
        return
    shown = ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
    raise UsageError(f"{out} already holds files that are not a training run ({shown}), so nothing was written "
                     "there.", f"Choose a new or empty folder, e.g. --out {shlex.quote(str(out / 'run1'))}.")
