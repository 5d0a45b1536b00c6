"""The run's event vocabulary: the words on disk, the three that end a run, and every event the trainers write."""

from __future__ import annotations

import re
from pathlib import Path

from tools.jobs import run_outcome
from tools.run_events import TERMINAL, EventType, final_event, finished
from tools.train.events import EventWriter

ROOT = Path(__file__).resolve().parents[2]


def test_the_words_on_disk_are_the_designs():
    assert [t.value for t in EventType] == ["start", "step", "eval", "checkpoint", "diagnosis", "done", "stopped",
                                           "failed"]
    assert {"done", "stopped", "failed"} == TERMINAL


def test_every_event_the_code_writes_is_in_the_vocabulary():
    written = {m for f in (ROOT / "tools").rglob("*.py")
               for m in re.findall(r'\bemit\(\s*"(\w+)"', f.read_text(encoding="utf-8"))}
    assert written
    assert written <= set(EventType)


def test_a_resumed_run_ends_with_its_last_terminal_event(tmp_path):
    events = EventWriter(tmp_path)
    events.emit("start")
    events.emit("stopped", step=3, message="stopped at step 3")
    events.emit("start", resumed_from=3)
    events.emit("step", step=4, loss=1.0)
    assert final_event(events.history)["type"] == "stopped"
    assert not finished(events.history)
    events.emit("done", adapter=str(tmp_path / "adapter"), metrics={})
    assert final_event(events.history)["type"] == "done"
    assert finished(events.history)
    assert run_outcome(tmp_path)["status"] == "done"
