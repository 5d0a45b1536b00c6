"""The checks themselves: per-row facts as rows stream past, then the dataset-wide checks and the stats."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from tools.dataset.duplicates import (
    duplicate_issue,
    fingerprint,
    near_issue,
    near_pairs,
    signatures,
    word_set,
)
from tools.dataset.lengths import (
    MAX_EXAMPLE_CHARS,
    counter_for,
    default_context,
    estimate_counter,
    estimate_text,
    estimate_tokens,
    message_estimates,
    outlier_issues,
    too_big_issue,
    too_long_issue,
)
from tools.dataset.model import Example, Issue
from tools.dataset.privacy import privacy_issues
from tools.dataset.rows import allowed_label_issues, make_issue, placeholder_issues, row_issues
from tools.dataset.text import RowText

MIN_EXAMPLES = 10
RECOMMENDED_EXAMPLES = 50
IMBALANCE_RATIO = 3.0
# rows are tokenised and signed in batches of about this much text: big enough for numpy, small enough that
# the temporaries stay a few tens of MB
_BATCH_CHARS = 256_000
_BATCH_ROWS = 512

def _percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    idx = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[idx]


class RowFacts(NamedTuple):
    """What the checks learn from one row on its own, so it can be worked out away from the row order."""

    issues: list[Issue]
    big: bool
    chars: int = 0
    estimates: list[int] = []
    roles: list[str] = []
    kind: str | None = None
    prompt: str | None = None
    answer: tuple[str, int] | None = None
    tags: list[str] = []
    key: str = ""
    row: RowText | None = None
    tokens: int | None = None
    sig: bytes | None = None
    words: bytes | None = None


def row_facts(ex: Example, estimating: bool, labels: Sequence[str], use_embeddings: bool) -> RowFacts:
    """The per-row checks of one row, in the order they report."""
    from tools.dataset.coverage import classify_keywords

    issues = row_issues(ex)
    row = RowText(ex.all_text())
    if len(row.text) > MAX_EXAMPLE_CHARS:
        return RowFacts(issues + [too_big_issue(ex, len(row.text))], big=True)
    issues += privacy_issues(ex, row)
    issues += placeholder_issues(ex)
    estimates = message_estimates(ex) if estimating else []
    known = dict(zip((m.content for m in ex.messages), estimates, strict=False))
    roles: list[str] = []
    kind = prompt = None
    answer: tuple[str, str] | None = None
    tags: list[str] = []
    if ex.kind == "chat":
        roles = [m.role for m in ex.messages]
        kind = classify_keywords(ex.prompt())
        if kind is None and use_embeddings:
            prompt = ex.prompt()
        reply = ex.answer()
        if reply.strip():
            answer = (kind or "", reply)
    elif ex.kind == "classification" and ex.label:
        issues += allowed_label_issues(ex, labels)
        answer = (ex.label, ex.text)
    elif ex.kind == "ner":
        tags = [t[2:] for t in ex.tags or [] if t.startswith("B-")]
    counted = None
    if answer is not None:
        tokens = known.get(answer[1])
        counted = (answer[0], estimate_text(answer[1]) if tokens is None else tokens)
    return RowFacts(issues, big=False, chars=len(row.text), estimates=estimates, roles=roles, kind=kind,
                    prompt=prompt, answer=counted, tags=tags, key=fingerprint(ex, row), row=row)


def batch_facts(rows: Sequence[Example], estimating: bool, labels: Sequence[str], use_embeddings: bool,
                near_duplicates: bool) -> list[RowFacts]:
    """row_facts for a batch, with each row's length estimate and MinHash signature, and without its text.

    Runs in a worker process: what comes back is small, and the signatures are done a batch at a time.
    """
    import numpy as np

    facts = [row_facts(ex, estimating, labels, use_embeddings) for ex in rows]
    kept = [i for i, f in enumerate(facts) if f.row is not None]
    sigs = (signatures([facts[i].row.text for i in kept]).astype(np.uint16)  # type: ignore[union-attr]
            if near_duplicates and kept else None)
    for n, i in enumerate(kept):
        f, row = facts[i], facts[i].row
        assert row is not None
        facts[i] = f._replace(
            row=None, estimates=[], tokens=estimate_tokens(rows[i], f.estimates) if estimating else None,
            sig=None if sigs is None else sigs[n].tobytes(), words=word_set(row) if near_duplicates else None)
    return facts


class Analysis:
    """One pass over the rows: row checks at once, a few compact facts per row kept for the dataset-wide ones.

    Holding facts instead of rows keeps memory small (a few hundred bytes a row), so a file of any size can
    be checked while it streams past.
    """

    def __init__(self, *, model: str | None = None, context: int | None = None, labels: Sequence[str] = (),
                 near_duplicates: bool = True, use_embeddings: bool = False) -> None:
        self.model = model
        self.counter, self.counting = counter_for(model)
        # without a tokenizer each message is estimated once, for the row's length and for its answer's
        self.estimating = self.counter is estimate_counter
        self.context = context or default_context(model)
        self.labels = list(labels)
        self.near_duplicates = near_duplicates
        self.use_embeddings = use_embeddings
        self.issues: list[Issue] = []
        self.n = 0
        self.kinds: Counter[str] = Counter()
        self.roles: Counter[str] = Counter()
        self.turns: Counter[int] = Counter()
        self.label_counts: Counter[str] = Counter()
        self.entity_tags: Counter[str] = Counter()
        self.task_kinds: list[str | None] = []
        self.unmatched: list[tuple[int, str]] = []
        self.lengths: list[int] = []
        self.answer_lines: list[int | None] = []
        self.answer_kinds: list[str] = []
        self.answer_tokens: list[int] = []
        self.seen: dict[str, int | None] = {}
        self.sig_lines: list[int | None] = []
        self.sig_sets: list[bytes | None] = []
        self.sig_blocks: list[Any] = []
        self._pending: list[tuple[Example, bool, RowFacts]] = []
        self._pending_chars = 0

    def add(self, ex: Example) -> None:
        """Check one row and keep what the dataset-wide checks need."""
        if ex.line is None:
            # rows made in memory have no file line: number them by position so every issue still points somewhere
            ex = ex.model_copy(update={"line": self.n + 1})
        self.take(ex, row_facts(ex, self.estimating, self.labels, self.use_embeddings))

    def take(self, ex: Example, facts: RowFacts) -> None:
        """Keep one row's facts, worked out here or in a worker; what depends on row order happens here."""
        self.n += 1
        self.issues += facts.issues
        self.kinds[ex.kind] += 1
        if facts.big:
            return
        if ex.kind == "chat":
            self.roles.update(facts.roles)
            self.turns[len(facts.roles)] += 1
            if facts.prompt is not None:
                self.unmatched.append((len(self.task_kinds), facts.prompt))
            self.task_kinds.append(facts.kind)
        elif ex.kind == "classification" and ex.label:
            self.label_counts[ex.label] += 1
        elif ex.kind == "ner":
            self.entity_tags.update(facts.tags)
        if facts.answer is not None:
            self.answer_lines.append(ex.line)
            self.answer_kinds.append(facts.answer[0])
            self.answer_tokens.append(facts.answer[1])
        first = self.seen.get(facts.key, -1)
        if first != -1:
            self.issues.append(duplicate_issue(ex, first))
        else:
            self.seen[facts.key] = ex.line
        self._pending.append((ex, first == -1, facts))
        self._pending_chars += facts.chars
        if self._pending_chars >= _BATCH_CHARS or len(self._pending) >= _BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        import numpy as np

        pending, self._pending, self._pending_chars = self._pending, [], 0
        if not pending:
            return
        rows = [ex for ex, _, _ in pending]
        lengths = ([estimate_tokens(ex, f.estimates) if f.tokens is None else f.tokens for ex, _, f in pending]
                   if self.estimating else self.counter(rows))
        self.lengths += lengths
        self.issues += [too_long_issue(ex, n, self.context) for ex, n in zip(rows, lengths, strict=True)
                        if n > self.context]
        if self.near_duplicates:
            kept = [(ex.line, f) for ex, unique, f in pending if unique]
            if kept:
                if all(f.sig is not None for _, f in kept):
                    sigs = b"".join(f.sig for _, f in kept if f.sig is not None)
                    self.sig_blocks.append(np.frombuffer(sigs, dtype=np.uint16).reshape(len(kept), -1))
                    self.sig_sets += [f.words for _, f in kept]
                else:
                    # the low 16 bits of each MinHash value estimate similarity as well (b-bit MinHash) in half
                    # the memory: 128 bytes a row
                    texts = [f.row for _, f in kept if f.row is not None]
                    self.sig_blocks.append(signatures([t.text for t in texts]).astype(np.uint16))
                    self.sig_sets += [word_set(t) for t in texts]
                self.sig_lines += [line for line, _ in kept]

    def finish(self, validation: Sequence[Example] = ()) -> tuple[list[Issue], dict[str, Any]]:
        """The dataset-wide checks and the stats; returns (issues sorted by line, stats)."""
        import numpy as np

        from tools.dataset.coverage import classify, summarise

        self._flush()
        issues = self.issues
        if self.sig_blocks and len(self.sig_lines) > 1:
            # moved block by block into one matrix, so the signatures are never held twice
            sigs = np.empty((len(self.sig_lines), self.sig_blocks[0].shape[1]), dtype=self.sig_blocks[0].dtype)
            done = 0
            while self.sig_blocks:
                block = self.sig_blocks.pop(0)
                sigs[done:done + len(block)] = block
                done += len(block)
            issues += [near_issue(self.sig_lines[i], self.sig_lines[j], sim)
                       for i, j, sim in near_pairs(sigs, self.sig_sets)]
        issues += outlier_issues(self.answer_lines, self.answer_kinds, self.answer_tokens)
        issues += size_issues(self.n)
        if self.label_counts:
            issues += balance_issues(self.label_counts) + _unseen_label_issues(validation, self.label_counts)
        for ex in validation:
            twin = self.seen.get(fingerprint(ex), -1)
            if twin != -1:
                issues.append(make_issue("train_val_overlap", "error", ex.line,
                                         f"Validation line {ex.line} is also in the training data (line {twin}); "
                                         "the validation score would measure memory, not skill.",
                                         "Remove it from one of the two files; --fix removes it from the "
                                         "validation set."))
            issues += [i.model_copy(update={"message": f"In the validation file: {i.message}"})
                       for i in row_issues(ex) if i.severity == "error"]
        stats: dict[str, Any] = {
            "examples": self.n,
            "kinds": dict(self.kinds),
            "tokens": _length_stats(self.lengths),
            "token_counting": self.counting,
            "context": self.context,
            "roles": dict(self.roles),
            "turns": dict(self.turns),
        }
        if self.label_counts:
            stats["labels"] = dict(self.label_counts)
        if self.entity_tags:
            stats["entity_tags"] = dict(self.entity_tags)
        if self.kinds.get("chat"):
            kinds = self.task_kinds
            if self.unmatched:
                placed = classify([t for _, t in self.unmatched], use_embeddings=True)
                for (i, _), kind in zip(self.unmatched, placed, strict=True):
                    kinds[i] = kind
            cov = summarise(kinds, method="keywords+embeddings" if self.use_embeddings else "keywords")
            stats["coverage"] = cov
            issues += coverage_issues(cov, self.n)
        if validation:
            stats["validation_examples"] = len(validation)
        issues.sort(key=lambda i: (i.line is not None, i.line or 0))
        return issues, stats


def analyse(examples: Iterable[Example], *, model: str | None = None, context: int | None = None,
            validation: Sequence[Example] = (), labels: Sequence[str] = (), near_duplicates: bool = True,
            use_embeddings: bool = False) -> tuple[list[Issue], dict[str, Any]]:
    """Run every check over rows as they stream past and gather the stats the report shows: (issues, stats)."""
    run = Analysis(model=model, context=context, labels=labels, near_duplicates=near_duplicates,
                   use_embeddings=use_embeddings)
    for ex in examples:
        run.add(ex)
    return run.finish(validation)


def _length_stats(lengths: Sequence[int]) -> dict[str, int]:
    ordered = sorted(lengths)
    return {"min": ordered[0] if ordered else 0, "median": _percentile(ordered, 0.5),
            "p95": _percentile(ordered, 0.95), "max": ordered[-1] if ordered else 0, "total": sum(ordered)}


def size_issues(n: int) -> list[Issue]:
    """Too few rows to learn from (minimum 10, recommended 50–100)."""
    if n < MIN_EXAMPLES:
        return [make_issue("too_few_examples", "error", None,
                           f"Only {n} usable example{'s' * (n != 1)}; fine-tuning needs at least {MIN_EXAMPLES}.",
                           "Add more examples (50–100 is a good first round); the wizard can draft them with you.")]
    if n < RECOMMENDED_EXAMPLES:
        return [make_issue("too_few_examples", "info", None,
                           f"{n} examples is enough to start; 50–100 gives noticeably better results.",
                           "Add examples for the task kinds that matter most, 20 high-quality ones beat 100 generic.")]
    return []


def balance_issues(counts: Counter[str]) -> list[Issue]:
    """One class only, or the largest class far bigger than the smallest."""
    if len(counts) == 1:
        return [make_issue("label_imbalance", "error", None,
                           f"Every example has the same label ('{next(iter(counts))}'); there is nothing to tell "
                           "apart.",
                           "Add examples of the other classes.")]
    if len(counts) > 1:
        (big, nbig), (small, nsmall) = counts.most_common(1)[0], counts.most_common()[-1]
        if nbig > IMBALANCE_RATIO * nsmall:
            return [make_issue("label_imbalance", "warning", None,
                               f"Classes are unbalanced: '{big}' has {nbig} examples, '{small}' only {nsmall}; "
                               f"the model will lean towards '{big}'.",
                               f"Add examples of '{small}' (aim for no class under a third of the largest).")]
    return []


def _unseen_label_issues(validation: Sequence[Example], counts: Counter[str]) -> list[Issue]:
    return [make_issue("unseen_label", "error", ex.line,
                       f"Validation line {ex.line} has label '{ex.label}', which no training example has.",
                       f"Add training examples labelled '{ex.label}', or fix the label.")
            for ex in validation if ex.kind == "classification" and ex.label and ex.label not in counts]


def coverage_issues(cov: dict[str, Any], n: int) -> list[Issue]:
    """A note on PM task kinds that are thin next to the rest (only when the data spans several kinds)."""
    from tools.dataset.coverage import category_name

    kinds = {k: v for k, v in cov["kinds"].items() if v}
    # on a small first round every kind is thin; the note only helps once there is a body of data
    if n < 2 * MIN_EXAMPLES or len(kinds) < 2 or not cov["thin"]:
        return []
    thin = ", ".join(f"{category_name(k)} ({kinds[k]})" for k in cov["thin"])
    return [make_issue("thin_category", "info", None,
                       f"Some task kinds have few examples next to the rest: {thin}.",
                       "Add 10–20 examples for each kind the model must handle well (20–30 for essentials like "
                       "requirements and communication).")]
