"""Read every dataset format users bring into canonical rows, streaming, without ever crashing."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.dataset.fields import MediaPart
from tools.dataset.fields import issue as _issue
from tools.dataset.formats import bio_from_spans, detect_format, to_example
from tools.dataset.mapping import TAGS
from tools.dataset.model import Example, Issue
from tools.dataset.notes import FileNotes, Record, count
from tools.dataset.records import iter_records
from tools.errors import UsageError

FORMATS = ("messages", "alpaca", "dolly", "sharegpt", "prompt_completion", "classification", "ner", "dpo", "kto")
"""Record formats `--format` accepts and the reader detects."""
NOT_DATASETS = ("plain_text", "dataset_registry", "binary")
"""What a file can be instead of a dataset; the report names it and says what to do."""
PREFERENCE_FORMATS = ("dpo", "kto")
"""Preference data (judgements): read and checked like any dataset, trained with `mtw train --method dpo|kto`."""

_DETECT_SAMPLE = 50


@dataclass
class ReadResult:
    """What reading a file produced: the detected format, the rows, and every issue on the way."""

    format: str
    examples: list[Example] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    container: str = "jsonl"
    encoding: str = "utf-8"
    records: int = 0
    """Records seen in the file, including the ones that could not be read."""


# ---------------------------------------------------------------- the reader


def _check_format(fmt: str | None) -> None:
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"Unknown format '{fmt}'.", f"Use one of: {', '.join(FORMATS)} (or leave it out to detect).")


def _unknown_format(sample: list[Record]) -> Issue:
    keys = sorted({str(k) for r in sample if isinstance(r.value, dict) for k in r.value})
    return Issue(code="unknown_format", severity="error", line=sample[0].line if sample else None,
                 message="Could not tell the format of this file: no record has the fields of a known format "
                         f"(fields seen: {', '.join(keys[:12]) or 'none'}).",
                 fix="Use one of: {\"messages\": [{\"role\", \"content\"}]}, "
                     "{\"instruction\", \"input\", \"output\"}, {\"conversations\": [{\"from\", \"value\"}]}, "
                     "{\"prompt\", \"completion\"}, {\"text\", \"label\"}, {\"tokens\", \"tags\"}; "
                     "for CSV name the columns prompt,completion or text,label — or pass "
                     "--format.")


def _registry_issue(value: dict[str, Any], line: int) -> Issue:
    names = list(value)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    first = value[names[0]]
    file = first.get("file_name", "FILE") if isinstance(first, dict) else "FILE"
    return _issue("dataset_registry", line,
                  "This is a dataset registry (LLaMA-Factory's dataset_info.json) listing "
                  f"{count(len(names), 'dataset')} ({shown}), not a dataset itself.",
                  f"Check one of the datasets it lists, with its column names: mtw check {shlex.quote(str(file))} "
                  f"--dataset-info dataset_info.json --dataset {shlex.quote(str(names[0]))}")


def _missing_columns(sample: list[Record], column_map: dict[str, str]) -> list[Issue]:
    """--map names a column that no record has: say which columns there are."""
    values = [r.value for r in sample if isinstance(r.value, dict)]
    if not values or not column_map:
        return []
    seen = {str(k) for v in values for k in v}
    out = []
    for fld, col in column_map.items():
        if fld not in seen and fld not in TAGS:
            out.append(_issue("missing_field", None, f"--map {fld}={col}: there is no column \"{col}\" "
                                                     f"(columns: {', '.join(sorted(seen)[:12])}).",
                              "Spell the column exactly as in the file's header or keys."))
    return out


def iter_examples(path: str | Path, format: str | None = None, *,
                  issues: list[Issue] | None = None, notes: FileNotes | None = None,
                  detected: list[str] | None = None, column_map: dict[str, str] | None = None) -> Iterator[Example]:
    """Stream canonical rows from a file; every problem is appended to `issues`, nothing raises.

    The format is detected from the first records (or forced with `format`); its name is appended to
    `detected` as soon as it is known. `column_map` (FIELD -> COLUMN) names the columns first.
    """
    _check_format(format)
    issues = issues if issues is not None else []
    notes = notes if notes is not None else FileNotes()
    records = iter_records(path, notes=notes, column_map=column_map)
    sample: list[Record] = []
    for rec in records:
        sample.append(rec)
        if len(sample) >= _DETECT_SAMPLE:
            break
    issues += _missing_columns(sample, column_map or {})
    fmt = format
    if fmt is None:
        votes: dict[str, int] = {}
        for rec in sample:
            found = detect_format(rec.value)
            if found:
                votes[found] = votes.get(found, 0) + 1
        if not votes:
            if any(r.issue is None for r in sample):
                issues.append(_unknown_format(sample))
            issues.extend(r.issue for r in sample if r.issue)
            notes.records += len(sample)
            for rec in records:  # count the rest so the report says how many records there were
                notes.records += 1
                if rec.issue:
                    issues.append(rec.issue)
            if detected is not None:
                detected.append(notes.kind or ("unknown" if sample else "empty"))
            return
        fmt = max(votes, key=lambda k: votes[k])
    if detected is not None:
        detected.append(fmt)
    if fmt == "dataset_registry":
        registry = next(r for r in sample if detect_format(r.value) == fmt)
        notes.records += len(sample)
        issues.append(_registry_issue(registry.value, registry.line))
        return

    def all_records() -> Iterator[Record]:
        yield from sample
        yield from records

    for rec in all_records():
        notes.records += 1
        if rec.issue is not None:
            issues.append(rec.issue)
            continue
        try:
            ex = to_example(rec.value, fmt, rec.line, issues)
        except MediaPart:
            notes.media.append(rec.line)
            continue
        if ex is not None:
            yield ex


def renumber(issues: list[Issue], notes: FileNotes) -> list[Issue]:
    """Issues that say "Line N" say "Record N" when the records share one line (a one-line JSON array)."""
    if notes.numbering != "record":
        return issues
    return [i.model_copy(update={"message": re.sub(r"\b[Ll]ine (\d)", r"Record \1", i.message)}) for i in issues]


def read_dataset(path: str | Path, format: str | None = None, *,
                 column_map: dict[str, str] | None = None) -> ReadResult:
    """Read a whole dataset file into canonical rows, with the detected format and every issue found."""
    issues: list[Issue] = []
    notes = FileNotes()
    detected: list[str] = []
    examples = list(iter_examples(path, format, issues=issues, notes=notes, detected=detected,
                                  column_map=column_map))
    fmt = detected[0] if detected else (format or "empty")
    issues[:0] = notes.issues()
    return ReadResult(format=fmt, examples=examples, issues=renumber(issues, notes), container=notes.container,
                      encoding=notes.encoding, records=notes.records)


__all__ = ["bio_from_spans", "detect_format", "to_example"]
"""Re-exported: callers read formats through the reader."""
