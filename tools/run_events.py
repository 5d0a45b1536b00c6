"""The events of a training run (RUN_DIR/events.jsonl's `"type"` field, DESIGN.md) and the three that end it."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    """One event line's `"type"`: each value is the word on disk (a StrEnum compares equal to that word)."""

    START = "start"
    """config, speed settings, dataset_version, estimate_s (the whole run's wall time as shown to the user)."""
    STEP = "step"
    """step, epoch, loss, lr, tokens_per_s, eta_s, peak_mem_mb, checkpointed_layers when any."""
    EVAL = "eval"
    """step, val_loss."""
    CHECKPOINT = "checkpoint"
    DIAGNOSIS = "diagnosis"
    """code, message, fix (a config change that would address it)."""
    DONE = "done"
    """adapter path, metrics."""
    STOPPED = "stopped"
    FAILED = "failed"
    """code, message."""


TERMINAL: frozenset[str] = frozenset({EventType.DONE, EventType.STOPPED, EventType.FAILED})
"""The events a run ends with: after one of them nothing more is written."""


def is_terminal(event: dict[str, Any]) -> bool:
    """The run ended with this event (done, stopped or failed)."""
    return event.get("type") in TERMINAL


def final_event(events: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The last event that ended the run (a resumed run may have stopped before); None while it still runs."""
    return next((e for e in reversed(list(events)) if is_terminal(e)), None)


def finished(events: Iterable[dict[str, Any]]) -> bool:
    """The run trained to the end: it has a `done` event (a stop or a failure may come before a resume)."""
    return any(e.get("type") == EventType.DONE for e in events)
