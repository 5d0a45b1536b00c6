"""Write rows back out: the canonical JSONL of examples and judgements (what --fix and a version keep)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tools.dataset.model import Example
from tools.errors import UsageError
from tools.fileio import atomic_writer


def to_record(ex: Example) -> dict[str, Any]:
    """The canonical JSON object for a row: messages for chat, text+label, or tokens+tags."""
    if ex.kind == "ner":
        return {"tokens": ex.tokens, "tags": ex.tags}
    if ex.kind == "classification":
        return {"text": ex.text, "label": ex.label}
    record: dict[str, Any] = {"messages": [m.openai() for m in ex.messages]}
    if ex.tools:
        record["tools"] = ex.tools
    return record


def to_preference_record(ex: Example) -> dict[str, Any]:
    """A judgement as the JSON object preference files hold: TRL's prompt / chosen / rejected turns for a pair,
    a messages record with its true / false label for a single rated answer (both read back as they were)."""
    pref = ex.preference()
    if pref is None:
        raise UsageError(f"Line {ex.line}: this row is an example, not a judgement.",
                         "Write examples with write_messages_jsonl instead.")
    record: dict[str, Any] = {"messages": [m.openai() for m in ex.messages], "label": bool(ex.desirable)}
    if pref.paired:
        record = {"prompt": [m.openai() for m in pref.prompt], "chosen": [m.openai() for m in pref.chosen],
                  "rejected": [m.openai() for m in pref.rejected]}
    if ex.models:
        record["models"] = ex.models
    return record


def write_preferences_jsonl(examples: Iterable[Example], path: str | Path) -> int:
    """Write judgements as JSONL (DPO pairs, KTO labels); returns the row count."""
    return _write_jsonl((to_preference_record(ex) for ex in examples), path)


def _write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    n = 0
    with atomic_writer(Path(path)) as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


def record_line(ex: Example) -> str:
    """One row as a line of the JSONL that --fix writes (its canonical form)."""
    return json.dumps(to_record(ex), ensure_ascii=False) + "\n"


def write_messages_jsonl(examples: Iterable[Example], path: str | Path) -> int:
    """Write rows as JSONL in their canonical form (OpenAI messages for chat); returns the row count."""
    return _write_jsonl((to_record(ex) for ex in examples), path)


def dumps_jsonl(examples: Iterable[Example]) -> str:
    """The canonical JSONL text of some rows, as a dataset version keeps them: examples as write_messages_jsonl
    writes them, judgements whole (both answers, the label, who wrote them)."""
    buf = io.StringIO()
    for ex in examples:
        record = to_record(ex) if ex.preference() is None else to_preference_record(ex)
        buf.write(json.dumps(record, ensure_ascii=False) + "\n")
    return buf.getvalue()

