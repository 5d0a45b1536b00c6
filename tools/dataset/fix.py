"""`mtw check --fix`: write a cleaned copy (never the input) and say every change it made."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.dataset.analysis import MIN_EXAMPLES
from tools.dataset.checks import validation_path_for
from tools.dataset.duplicates import fingerprint, near_pairs, signatures, word_sets
from tools.dataset.lengths import MAX_EXAMPLE_CHARS, counter_for, default_context
from tools.dataset.model import Example, Issue, Message
from tools.dataset.notes import FileNotes
from tools.dataset.privacy import redact_secrets
from tools.dataset.readers import NOT_DATASETS, iter_examples, read_dataset
from tools.dataset.writers import record_line
from tools.errors import MTWError, UsageError
from tools.fileio import atomic_writer

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


def split_positions(labels: Sequence[str | None], share: float = VALIDATION_SHARE, seed: int = 0
                    ) -> tuple[list[int], list[int]]:
    """Train / validation positions (stratified by label when rows have one); validation gets at least one row."""
    rng = random.Random(seed)
    n_val = max(1, round(len(labels) * share))
    if len(labels) - n_val < MIN_EXAMPLES:
        return list(range(len(labels))), []
    by_label: dict[str | None, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    val_idx: set[int] = set()
    for idx in by_label.values():
        rng.shuffle(idx)
        # every class keeps most of its rows for training; classes with one row stay in training
        take = min(len(idx) - 1, round(len(idx) * share)) if len(by_label) > 1 else n_val
        val_idx.update(idx[:take])
    if not val_idx:
        val_idx.add(rng.randrange(len(labels)))
    return [i for i in range(len(labels)) if i not in val_idx], sorted(val_idx)


def _lines(nums: Sequence[int], limit: int = 8) -> str:
    """'line 4' or 'lines 4, 9 and 3 more'."""
    shown = ", ".join(str(n) for n in nums[:limit])
    return f"line{'s' * (len(nums) != 1)} {shown}" + (f" and {len(nums) - limit} more" if len(nums) > limit else "")


def fix_dataset(path: str | Path, out: str | Path, *, format: str | None = None, model: str | None = None,
                context: int | None = None, validation_share: float = VALIDATION_SHARE,
                drop_near_duplicates: bool = False, seed: int = 0,
                column_map: dict[str, str] | None = None) -> FixResult:
    """Clean `path` into `out` (+ a validation file next to it) and return the changes, in plain words.

    Two passes over the file, neither holding the rows: the first decides what each row becomes (kept for
    training, for validation, or dropped, and why), the second repairs the rows again and writes them out.
    """
    path, out = Path(path), Path(out)
    if out.resolve() == path.resolve():
        raise UsageError(f"--fix would overwrite the input {path}.", "Give a new file name, e.g. --fix clean.jsonl.")
    if not 0 < validation_share < 1:
        raise UsageError(f"The validation share must be between 0 and 1 (got {validation_share}).",
                         "Use e.g. 0.1 for 10 %.")
    plan = _plan(path, format=format, model=model, context=context, drop_near_duplicates=drop_near_duplicates,
                 column_map=column_map)
    changes = plan.changes
    if plan.format in ("unknown", "empty", *NOT_DATASETS):
        raise NothingToKeep(f"--fix would keep no examples: nothing in {path} could be read as examples, so it "
                            "wrote nothing.",
                            "Fix the format problems listed in the report first.")
    import numpy as np

    # where each row read goes: 0 dropped, 1 training, 2 validation
    dest = np.zeros(plan.rows, dtype=np.uint8)
    dest[plan.kept] = 1
    val_in = validation_path_for(path)
    val_rows: list[Example] = []
    if val_in is not None:
        val_rows, _, _ = _repair_all(read_dataset(val_in, plan.format).examples)
        overlap = [ex for ex in val_rows if fingerprint(ex) in plan.keys]
        val_rows = [ex for ex in val_rows if fingerprint(ex) not in plan.keys]
        changes.append(f"Kept the validation file {val_in.name} ({len(val_rows)} rows).")
        if overlap:
            changes.append(f"Removed {len(overlap)} validation row(s) that were also in the training data.")
        n_val = len(val_rows)
    else:
        _, val_pos = split_positions(plan.labels, validation_share, seed)
        dest[[plan.kept[i] for i in val_pos]] = 2
        n_val = len(val_pos)
        if val_pos:
            how = "stratified by label" if any(label is not None for label in plan.labels) else "at random"
            changes.append(f"Split off {n_val} row(s) ({validation_share:.0%}, {how}) for validation.")
        else:
            changes.append(f"Did not split off a validation set: {len(plan.kept)} rows leave too few to train on.")
    n_train = len(plan.kept) - (0 if val_in is not None else n_val)
    if not n_train:
        raise NothingToKeep(f"--fix would keep no examples of {path}, so it wrote nothing: " + " ".join(changes[:3]),
                            "Fix the problems in the report (each names its line), then run --fix again.")
    val_path = validation_output(out) if n_val else None
    with ExitStack() as stack:
        # both files appear together when every row is written, or neither does
        files = {1: stack.enter_context(atomic_writer(out))}
        if val_path is not None:
            files[2] = stack.enter_context(atomic_writer(val_path))
        for pos, ex in enumerate(iter_examples(path, plan.format, column_map=column_map)):
            if pos >= plan.rows or not dest[pos] or ex.desirable is False:
                continue
            fixed, _ = repair(ex)
            if fixed is not None:
                files[int(dest[pos])].write(record_line(fixed))
        for ex in val_rows:
            files[2].write(record_line(ex))
    return FixResult(train_path=out, validation_path=val_path, train_examples=n_train,
                     validation_examples=n_val, changes=changes)


@dataclass
class _Plan:
    """What the first pass decided: the positions of the rows to keep, their labels and content hashes."""

    format: str
    rows: int = 0
    kept: list[int] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    changes: list[str] = field(default_factory=list)


def _plan(path: Path, *, format: str | None, model: str | None, context: int | None, drop_near_duplicates: bool,
          column_map: dict[str, str] | None) -> _Plan:
    """The first pass: every row repaired and judged, only its position, label and hash kept."""
    issues: list[Issue] = []
    notes = FileNotes()
    detected: list[str] = []
    counter, _ = counter_for(model)
    ctx = context or default_context(model)
    unread: set[int] = set()
    codes: set[str] = set()
    undesirable: list[int] = []
    dropped: list[int] = []
    dups: list[int] = []
    huge: list[int] = []
    too_long: list[int] = []
    tally: Counter[str] = Counter()
    lines: list[int] = []
    sig_blocks: list[Any] = []
    sig_sets: list[bytes | None] = []
    batch: list[tuple[int, str]] = []
    plan = _Plan(format="")

    def sign() -> None:
        if batch:
            texts = [text for _, text in batch]
            sig_blocks.append(signatures(texts))
            sig_sets.extend(word_sets(texts))
            batch.clear()

    for pos, ex in enumerate(iter_examples(path, format, issues=issues, notes=notes, detected=detected,
                                           column_map=column_map)):
        plan.rows = pos + 1
        for issue in issues:
            codes.add(issue.code)
            if issue.severity == "error" and issue.line is not None:
                unread.add(issue.line)
        issues.clear()
        if ex.desirable is False:
            undesirable.append(ex.line or 0)
            continue
        fixed, did = repair(ex)
        tally.update(what for what in set(did) if not what.startswith("dropped:"))
        if fixed is None:
            dropped.append(ex.line or 0)
            continue
        key = fingerprint(fixed)
        if key in plan.keys:
            dups.append(ex.line or 0)
            continue
        plan.keys.add(key)
        text = fixed.all_text()
        if len(text) > MAX_EXAMPLE_CHARS:
            huge.append(ex.line or 0)
            continue
        if counter([fixed])[0] > ctx:
            too_long.append(ex.line or 0)
            continue
        plan.kept.append(pos)
        plan.labels.append(fixed.label if fixed.kind == "classification" else None)
        lines.append(ex.line or 0)
        if drop_near_duplicates:
            batch.append((pos, text))
            if len(batch) >= 512:
                sign()
    for issue in issues + notes.issues():
        codes.add(issue.code)
        if issue.severity == "error" and issue.line is not None and issue.code not in ("media_skipped",):
            unread.add(issue.line)
    plan.format = detected[0] if detected else (format or "empty")
    changes = plan.changes
    if unread:
        changes.append(f"Dropped {len(unread)} record(s) that could not be read ({_lines(sorted(unread))}).")
    if plan.format == "dpo":
        changes.append("Kept each prompt with its chosen answer as an ordinary example; the rejected answers were "
                       "left out.")
    if notes.media:
        changes.append(f"Left out the examples with images, audio or video (first: line {notes.media[0]}).")
    if "extra_columns" in codes:
        changes.append("Dropped rows whose text spilled into columns without a name.")
    if "bad_role" in codes:
        changes.append("Renamed roles like 'human' / 'gpt' to 'user' / 'assistant'.")
    if codes & {"blank_line", "encoding", "line_endings", "invalid_json"} or notes.container != "jsonl":
        changes.append("Wrote plain UTF-8 JSONL: one record per line, no blank lines, Unix line endings.")
    if undesirable:
        changes.append(f"Left out {len(undesirable)} answer(s) labelled undesirable (false), so they are never "
                       f"taught ({_lines(undesirable)}).")
    for what, n in sorted(tally.items()):
        changes.append(f"{what[0].upper()}{what[1:]} ({n} row{'s' * (n != 1)}).")
    if dropped:
        changes.append(f"Dropped {len(dropped)} row(s) with nothing usable left ({_lines(dropped)}).")
    if dups:
        changes.append(f"Removed {len(dups)} exact duplicate(s), keeping the first ({_lines(dups)}).")
    if huge:
        changes.append(f"Dropped {len(huge)} row(s) with more than {MAX_EXAMPLE_CHARS:,} characters of text "
                       f"({_lines(huge)}).")
    if too_long:
        changes.append(f"Dropped {len(too_long)} row(s) longer than the {ctx:,}-token context ({_lines(too_long)}).")
    if drop_near_duplicates:
        import numpy as np

        sign()
        near = {i for i, _, _ in near_pairs(np.vstack(sig_blocks), sig_sets)} if sig_blocks else set()
        if near:
            changes.append(f"Removed {len(near)} near-duplicate(s) ({_lines([lines[i] for i in sorted(near)])}).")
            keep = [i for i in range(len(plan.kept)) if i not in near]
            plan.kept = [plan.kept[i] for i in keep]
            plan.labels = [plan.labels[i] for i in keep]
    return plan


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
