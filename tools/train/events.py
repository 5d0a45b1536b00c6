"""The run's narration: one JSON object per line in RUN_DIR/events.jsonl, appended and flushed as it happens."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.fileio import append_jsonl

Listener = Callable[[dict[str, Any]], None]


class EventWriter:
    """Appends events (each with a `ts` in Unix seconds) to RUN_DIR/events.jsonl and tells an optional listener."""

    def __init__(self, run_dir: Path | str, listener: Listener | None = None, enabled: bool = True) -> None:
        self.path = Path(run_dir) / "events.jsonl"
        self.listener = listener
        # in a multi-process run only rank 0 narrates; the others get a writer that stays silent
        self.enabled = enabled
        self.history: list[dict[str, Any]] = []

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        """Write one event now (flushed to disk before returning) and return it."""
        event = finite({"type": type, "ts": round(time.time(), 3), **fields})
        if not self.enabled:
            return event
        append_jsonl(self.path, event)
        self.history.append(event)
        if self.listener is not None:
            self.listener(event)
        return event


def finite(value: Any) -> Any:
    """VALUE with every NaN or infinity replaced by None: events.jsonl stays strict JSON (no bare NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def read_events(run_dir: Path | str) -> list[dict[str, Any]]:
    """Every complete event of a run, oldest first (a half-written last line from a crash is skipped)."""
    return tail_events(run_dir, 0)[0]


def tail_events(run_dir: Path | str, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Events appended since byte `offset` (complete lines only) and the new offset: a tail, not a re-read."""
    path = Path(run_dir) / "events.jsonl"
    if not path.exists():
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        chunk = f.read()
    end = chunk.rfind(b"\n") + 1
    events: list[dict[str, Any]] = []
    for line in chunk[:end].splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            events.append(obj)
    return events, offset + end
