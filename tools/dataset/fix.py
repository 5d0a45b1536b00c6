"""`mtw check --fix`: write a cleaned copy (never the input) and say every change it made."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.dataset.checks import MIN_EXAMPLES, validation_path_for
from tools.dataset.duplicates import fingerprint, near_duplicate_pairs
from tools.dataset.lengths import MAX_EXAMPLE_CHARS, counter_for, default_context
from tools.dataset.model import Example, Message
from tools.dataset.privacy import redact_secrets
from tools.dataset.readers import NOT_DATASETS, read_dataset, write_messages_jsonl
from tools.errors import MTWError, UsageError

VALIDATION_SHARE = 0.1


class NothingToKeep(MTWError):
    """--fix found no example worth keeping, so it wrote nothing (a problem with the data, not the command)."""

    code = "no_examples"


@dataclass
class FixResult:
    """What --fix wrote and what it changed, in plain sentences."""

    train_path: Path
    validation_path: Path | None
    train_examples: int
    validation_examples: int
    changes: list[str] = field(default_factory=list)


def validation_output(out: Path) -> Path:
    """Where the validation split of a cleaned file goes: next to it, as <name>.validation.jsonl."""
    return out.with_name(f"{out.stem}.validation{out.suffix or '.jsonl'}")


def repair(ex: Example) -> tuple[Example | None, list[str]]:
    """A cleaned copy of one row (or None when nothing usable is left) and what was changed."""
    did: list[str] = []
    if ex.kind == "ner":
        tokens = [t.strip() for t in ex.tokens or []]
        if not tokens or len(tokens) != len(ex.tags or []):
            return None, ["dropped: tokens and tags do not line up"]
        return ex.model_copy(update={"tokens": tokens}), did
    if ex.kind == "classification":
        text, label = ex.text.strip(), (ex.label or "").strip()
        if not text or not label:
            return None, ["dropped: empty text or label"]
        if text != ex.text or label != ex.label:
            did.append("stripped whitespace")
        clean = redact_secrets(text)
        if clean != text:
            did.append("replaced a secret with <SECRET>")
        return Example.classified(clean, label, line=ex.line), did
    if ex.desirable is False:
        return None, ["dropped: an answer labelled undesirable"]
    msgs: list[Message] = []
    for m in ex.messages:
        content = m.content.strip()
        if content != m.content:
            did.append("stripped whitespace")
        if not content and not m.tool_calls:
            did.append("dropped an empty turn")
            continue
        redacted = redact_secrets(content)
        if redacted != content:
            did.append("replaced a secret with <SECRET>")
        msgs.append(m.model_copy(update={"content": redacted}))
    system = [m.content for m in msgs if m.role == "system"]
    turns = [m for m in msgs if m.role != "system"]
    if len(system) > 1 or (system and msgs[0].role != "system"):
        did.append("moved the system text to the first turn")
    while turns and turns[0].role == "assistant":
        turns.pop(0)
        did.append("dropped a leading assistant turn")
    merged: list[Message] = []
    for m in turns:
        last = merged[-1] if merged else None
        if last is not None and last.role == m.role and m.role != "tool" and not (last.tool_calls or m.tool_calls):
            merged[-1] = last.model_copy(update={"content": f"{last.content}\n\n{m.content}"})
            did.append(f"merged two {m.role} turns in a row")
        else:
            merged.append(m)
    while merged and merged[-1].role != "assistant":
        merged.pop()
        did.append("dropped a trailing turn after the last answer")
    if not merged:
        return None, ["dropped: no user request with an assistant answer"]
    head = [Message(role="system", content="\n\n".join(system))] if system else []
    return Example(messages=head + merged, tools=ex.tools, line=ex.line), did


def _dedupe(rows: list[Example]) -> tuple[list[Example], list[int]]:
    seen: set[str] = set()
    kept, dropped = [], []
    for ex in rows:
        key = fingerprint(ex)
        if key in seen:
            dropped.append(ex.line or 0)
        else:
            seen.add(key)
            kept.append(ex)
    return kept, dropped


def split(rows: Sequence[Example], share: float = VALIDATION_SHARE, seed: int = 0
          ) -> tuple[list[Example], list[Example]]:
    """Train / validation split (stratified by label for classification); validation gets at least one row."""
    rng = random.Random(seed)
    n_val = max(1, round(len(rows) * share))
    if len(rows) - n_val < MIN_EXAMPLES:
        return list(rows), []
    by_label: dict[str | None, list[int]] = defaultdict(list)
    for i, ex in enumerate(rows):
        by_label[ex.label if ex.kind == "classification" else None].append(i)
    val_idx: set[int] = set()
    for idx in by_label.values():
        rng.shuffle(idx)
        # every class keeps most of its rows for training; classes with one row stay in training
        take = min(len(idx) - 1, round(len(idx) * share)) if len(by_label) > 1 else n_val
        val_idx.update(idx[:take])
    if not val_idx:
        val_idx.add(rng.randrange(len(rows)))
    train = [ex for i, ex in enumerate(rows) if i not in val_idx]
    val = [ex for i, ex in enumerate(rows) if i in val_idx]
    return train, val


def _lines(nums: Sequence[int], limit: int = 8) -> str:
    """'line 4' or 'lines 4, 9 and 3 more'."""
    shown = ", ".join(str(n) for n in nums[:limit])
    return f"line{'s' * (len(nums) != 1)} {shown}" + (f" and {len(nums) - limit} more" if len(nums) > limit else "")


def fix_dataset(path: str | Path, out: str | Path, *, format: str | None = None, model: str | None = None,
                context: int | None = None, validation_share: float = VALIDATION_SHARE,
                drop_near_duplicates: bool = False, seed: int = 0,
                column_map: dict[str, str] | None = None) -> FixResult:
    """Clean `path` into `out` (+ a validation file next to it) and return the changes, in plain words."""
    path, out = Path(path), Path(out)
    if out.resolve() == path.resolve():
        raise UsageError(f"--fix would overwrite the input {path}.", "Give a new file name, e.g. --fix clean.jsonl.")
    if not 0 < validation_share < 1:
        raise UsageError(f"The validation share must be between 0 and 1 (got {validation_share}).",
                         "Use e.g. 0.1 for 10 %.")
    result = read_dataset(path, format, column_map=column_map)
    changes: list[str] = []
    unread = sorted({i.line for i in result.issues if i.severity == "error" and i.line is not None})
    if unread:
        changes.append(f"Dropped {len(unread)} record(s) that could not be read ({_lines(unread)}).")
    if result.format in ("unknown", "empty", *NOT_DATASETS):
        raise NothingToKeep(f"--fix would keep no examples: nothing in {path} could be read as examples, so it "
                            "wrote nothing.",
                         "Fix the format problems listed in the report first.")
    codes = {i.code for i in result.issues}
    if result.format == "dpo":
        changes.append("Kept each prompt with its chosen answer as an ordinary example; the rejected answers were "
                       "left out.")
    media = next((i for i in result.issues if i.code == "media_skipped"), None)
    if media is not None:
        changes.append(f"Left out the examples with images, audio or video (first: line {media.line}).")
    if "extra_columns" in codes:
        changes.append("Dropped rows whose text spilled into columns without a name.")
    if "bad_role" in codes:
        changes.append("Renamed roles like 'human' / 'gpt' to 'user' / 'assistant'.")
    if codes & {"blank_line", "encoding", "line_endings", "invalid_json"} or result.container != "jsonl":
        changes.append("Wrote plain UTF-8 JSONL: one record per line, no blank lines, Unix line endings.")
    undesirable = [ex.line or 0 for ex in result.examples if ex.desirable is False]
    if undesirable:
        changes.append(f"Left out {len(undesirable)} answer(s) labelled undesirable (false), so they are never "
                       f"taught ({_lines(undesirable)}).")
    rows, tally, dropped_rows = _repair_all([ex for ex in result.examples if ex.desirable is not False])
    for what, n in sorted(tally.items()):
        changes.append(f"{what[0].upper()}{what[1:]} ({n} row{'s' * (n != 1)}).")
    if dropped_rows:
        changes.append(f"Dropped {len(dropped_rows)} row(s) with nothing usable left ({_lines(dropped_rows)}).")
    rows, dups = _dedupe(rows)
    if dups:
        changes.append(f"Removed {len(dups)} exact duplicate(s), keeping the first ({_lines(dups)}).")
    if drop_near_duplicates:
        near = {id(ex) for ex, _, _ in near_duplicate_pairs(rows)}
        near_lines = [ex.line or 0 for ex in rows if id(ex) in near]
        rows = [ex for ex in rows if id(ex) not in near]
        if near_lines:
            changes.append(f"Removed {len(near_lines)} near-duplicate(s) ({_lines(near_lines)}).")
    huge = [ex.line or 0 for ex in rows if len(ex.all_text()) > MAX_EXAMPLE_CHARS]
    if huge:
        rows = [ex for ex in rows if len(ex.all_text()) <= MAX_EXAMPLE_CHARS]
        changes.append(f"Dropped {len(huge)} row(s) with more than {MAX_EXAMPLE_CHARS:,} characters of text "
                       f"({_lines(huge)}).")
    counter, _ = counter_for(model)
    ctx = context or default_context(model)
    lengths = counter(rows)
    too_long = [ex.line or 0 for ex, n in zip(rows, lengths, strict=True) if n > ctx]
    if too_long:
        rows = [ex for ex, n in zip(rows, lengths, strict=True) if n <= ctx]
        changes.append(f"Dropped {len(too_long)} row(s) longer than the {ctx:,}-token context "
                       f"({_lines(too_long)}).")
    val_in = validation_path_for(path)
    if val_in is not None:
        val_rows, _, _ = _repair_all(read_dataset(val_in, result.format).examples)
        train_keys = {fingerprint(ex) for ex in rows}
        overlap = [ex for ex in val_rows if fingerprint(ex) in train_keys]
        val_rows = [ex for ex in val_rows if fingerprint(ex) not in train_keys]
        changes.append(f"Kept the validation file {val_in.name} ({len(val_rows)} rows).")
        if overlap:
            changes.append(f"Removed {len(overlap)} validation row(s) that were also in the training data.")
        train = rows
    else:
        train, val_rows = split(rows, validation_share, seed)
        if val_rows:
            how = "stratified by label" if any(ex.kind == "classification" for ex in rows) else "at random"
            changes.append(f"Split off {len(val_rows)} row(s) ({validation_share:.0%}, {how}) for validation.")
        else:
            changes.append(f"Did not split off a validation set: {len(rows)} rows leave too few to train on.")
    if not train:
        raise NothingToKeep(f"--fix would keep no examples of {path}, so it wrote nothing: "
                         + " ".join(changes[:3]),
                         "Fix the problems in the report (each names its line), then run --fix again.")
    write_messages_jsonl(train, out)
    val_path = None
    if val_rows:
        val_path = validation_output(out)
        write_messages_jsonl(val_rows, val_path)
    return FixResult(train_path=out, validation_path=val_path, train_examples=len(train),
                     validation_examples=len(val_rows), changes=changes)


def _repair_all(examples: Sequence[Example]) -> tuple[list[Example], Counter[str], list[int]]:
    rows: list[Example] = []
    tally: Counter[str] = Counter()
    dropped: list[int] = []
    for ex in examples:
        fixed, did = repair(ex)
        for what in set(did):
            if not what.startswith("dropped:"):
                tally[what] += 1
        if fixed is None:
            dropped.append(ex.line or 0)
        else:
            rows.append(fixed)
    return rows, tally, dropped
