"""Dataset checks: pure functions over canonical rows, each problem with its line, plain words and a fix."""

from __future__ import annotations

import hashlib
import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from tools.dataset.model import DatasetReport, Example, Issue, Severity
from tools.dataset.privacy import privacy_issues, redact_secrets

__all__ = ["privacy_issues", "redact_secrets"]

MIN_EXAMPLES = 10
RECOMMENDED_EXAMPLES = 50
DEFAULT_CONTEXT = 4096
NEAR_DUP_THRESHOLD = 0.8
NUM_PERM = 64
_BATCH = 512
IMBALANCE_RATIO = 3.0
# an answer this many times shorter/longer than the median answer is worth a look
OUTLIER_FACTOR = 5.0
MAX_EXAMPLE_TEXT = 60

TokenCounter = Callable[[Sequence[Example]], list[int]]


def _issue(code: str, severity: Severity, line: int | None, message: str, fix: str) -> Issue:
    return Issue(code=code, severity=severity, line=line, message=message, fix=fix)


def _at(ex: Example) -> str:
    return f"Line {ex.line}" if ex.line is not None else "An example"


# ---------------------------------------------------------------- one row at a time


def row_issues(ex: Example) -> list[Issue]:
    """Structural problems of one row: empty fields, role order, no answer, tag/token mismatches."""
    if ex.kind == "ner":
        return _ner_issues(ex)
    if ex.kind == "classification":
        return _classification_issues(ex)
    return _chat_issues(ex)


def _chat_issues(ex: Example) -> list[Issue]:
    at = _at(ex)
    out: list[Issue] = []
    if not ex.messages:
        return [_issue("empty_field", "error", ex.line, f"{at} has an empty conversation (no messages).",
                       "Add a user turn and an assistant answer, or delete the line; --fix drops it.")]
    for i, m in enumerate(ex.messages, start=1):
        if not m.content.strip() and not m.tool_calls:
            out.append(_issue("empty_field", "error", ex.line, f"{at}, message {i} ({m.role}) has no text.",
                              f"Write the {m.role} text or delete that turn; --fix drops empty turns."))
    out += tool_issues(ex)
    for i, m in enumerate(ex.messages[1:], start=2):
        if m.role == "system":
            out.append(_issue("role_order", "error", ex.line,
                              f"{at}, message {i}: a system message can only come first.",
                              "Move the system text to the first message; --fix does it."))
    turns = [(i, m) for i, m in enumerate(ex.messages, start=1) if m.role != "system"]
    for (_, a), (j, b) in zip(turns, turns[1:], strict=False):
        # a call, its results and the answer after them are assistant / tool / assistant by design
        if a.role == b.role and "tool" not in (a.role, b.role) and not a.tool_calls:
            out.append(_issue("role_order", "error", ex.line,
                              f"{at}: two {a.role} turns in a row (messages {j - 1} and {j}).",
                              f"Merge them into one {a.role} turn, or add the missing "
                              f"{'assistant' if a.role == 'user' else 'user'} turn between them; --fix merges them."))
    if not any(m.role == "assistant" for m in ex.messages):
        out.append(_issue("no_assistant", "error", ex.line,
                          f"{at} has no assistant turn, so there is no answer to learn from.",
                          "Add the answer as {\"role\": \"assistant\", \"content\": ...}; --fix drops the row."))
        return out
    if not any(m.taught() for m in ex.messages):
        out.append(_issue("no_assistant", "error", ex.line,
                          f"{at}: every assistant turn has weight 0, so nothing in it is taught.",
                          "Set \"weight\": 1 on the answer the model should learn, or delete the row; --fix drops it."))
    if turns and turns[0][1].role == "assistant":
        out.append(_issue("role_order", "error", ex.line, f"{at} starts with the assistant, before any user turn.",
                          "Put the user's request first; --fix drops the leading assistant turn."))
    if turns and turns[-1][1].role != "assistant":
        out.append(_issue("role_order", "error", ex.line,
                          f"{at} ends on a {turns[-1][1].role} turn, not on the assistant's answer.",
                          "End every conversation with the assistant's answer; --fix drops the trailing turn."))
    return out


def tool_issues(ex: Example) -> list[Issue]:
    """Tool calls that name no defined tool or carry arguments that are not JSON; results with no call before them."""
    import json

    at = _at(ex)
    out: list[Issue] = []
    defined = {str(t.get("function", {}).get("name")) for t in ex.tools or ()}
    pending = results_allowed = False
    for i, m in enumerate(ex.messages, start=1):
        for call in m.tool_calls or ():
            if ex.tools is not None and call.name not in defined:
                out.append(_issue("unknown_tool", "error", ex.line,
                                  f"{at}, message {i} calls \"{call.name}\", which is not among the tools defined "
                                  f"for it ({', '.join(sorted(defined)) or 'none'}).",
                                  f"Add a definition for \"{call.name}\" to \"tools\", or fix the name in the call."))
            try:
                json.loads(call.arguments)
            except json.JSONDecodeError:
                out.append(_issue("bad_tool_arguments", "error", ex.line,
                                  f"{at}, message {i}: the arguments of \"{call.name}\" are not valid JSON "
                                  f"(`{call.arguments[:40]}`).",
                                  "Write the arguments as a JSON object, e.g. {\"city\": \"Paris\"}."))
        if m.role == "tool" and not results_allowed:
            out.append(_issue("tool_order", "error", ex.line,
                              f"{at}, message {i} is a tool result with no tool call before it.",
                              "Put the assistant turn that makes the call (tool_calls) just before its result."))
        elif m.role in ("user", "assistant") and pending:
            out.append(_issue("tool_order", "error", ex.line,
                              f"{at}, message {i}: the tool call before it never gets its result.",
                              "Add the tool's result ({\"role\": \"tool\", \"content\": ...}) right after the "
                              "call."))
        if m.tool_calls:
            pending = results_allowed = True
        elif m.role == "tool":
            pending = False
        else:
            pending = results_allowed = False
    if any(m.tool_calls for m in ex.messages) and not ex.tools:
        out.append(_issue("unknown_tool", "warning", ex.line,
                          f"{at} calls tools but defines none, so the model learns calls without their "
                          "descriptions.", "Add the tool definitions in a \"tools\" field next to \"messages\"."))
    return out


def _classification_issues(ex: Example) -> list[Issue]:
    at = _at(ex)
    out = []
    if not ex.text.strip():
        out.append(_issue("empty_field", "error", ex.line, f"{at}: \"text\" is empty.",
                          "Write the text to classify, or delete the line; --fix drops it."))
    if not (ex.label or "").strip():
        out.append(_issue("empty_field", "error", ex.line, f"{at}: \"label\" is empty.",
                          "Give the row its class name; --fix drops rows without one."))
    return out


def _ner_issues(ex: Example) -> list[Issue]:
    at = _at(ex)
    tokens, tags = ex.tokens or [], ex.tags or []
    if not tokens:
        return [_issue("empty_field", "error", ex.line, f"{at}: \"tokens\" is empty.",
                       "Give the words of the sentence, one per entry; --fix drops the row.")]
    if len(tokens) != len(tags):
        return [_issue("tag_mismatch", "error", ex.line,
                       f"{at} has {len(tokens)} tokens but {len(tags)} tags.",
                       "Give exactly one tag per token (O for words outside any entity); --fix drops the row.")]
    out = []
    for i, (prev, tag) in enumerate(zip(["O", *tags], tags, strict=False), start=1):
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            out.append(_issue("tag_mismatch", "warning", ex.line,
                              f"{at}, token {i} (\"{tokens[i - 1]}\") is tagged {tag} but does not continue a "
                              f"{tag[2:]} entity.", f"Tag the first word of an entity B-{tag[2:]}."))
            break
    return out


# ---------------------------------------------------------------- duplicates


def normalise(text: str) -> str:
    """Lower-case, whitespace-collapsed text: what 'the same example' means for duplicate checks."""
    return " ".join(text.lower().split())


def fingerprint(ex: Example) -> str:
    """A content hash of the normalised row: equal for rows that differ only in case or spacing."""
    return hashlib.blake2b(normalise(ex.all_text()).encode("utf-8"), digest_size=16).hexdigest()


_HASH_BASE = 0x01000193  # odd, so it has an inverse modulo 2^32
_powers: dict[str, Any] = {}


def _power_tables(n: int) -> tuple[Any, Any]:
    """base^i and base^-i modulo 2^32 for i < n (uint32 arithmetic wraps, which is the modulo)."""
    import numpy as np

    if _powers.get("n", 0) < n:
        size = max(n, 1 << 16)
        inv = pow(_HASH_BASE, -1, 1 << 32)
        # cumprod gives base^(i+1); one step the other way brings each back to base^i
        _powers["pow"] = np.cumprod(np.full(size, _HASH_BASE, dtype=np.uint32), dtype=np.uint32) * np.uint32(inv)
        _powers["inv"] = np.cumprod(np.full(size, inv, dtype=np.uint32), dtype=np.uint32) * np.uint32(_HASH_BASE)
        _powers["n"] = size
    return _powers["pow"][:n], _powers["inv"][:n]


def _word_hashes(text: str) -> Any:
    """One 32-bit hash per whitespace-separated lower-cased word, computed without a Python loop."""
    return _byte_word_hashes(text.lower().encode("utf-8"))[2]


def _byte_word_hashes(raw: bytes) -> tuple[Any, Any, Any]:
    """(word starts, word ends, word hashes) for the whitespace-separated words of some bytes.

    A polynomial hash over the bytes: prefix sums of byte * base^i, and a word's hash is its slice of the
    prefix sums scaled back by base^-start, so the same word hashes the same wherever it stands.
    """
    import numpy as np

    data = np.frombuffer(raw, dtype=np.uint8)
    n = len(data)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.uint32)
    powers, inverse = _power_tables(n + 1)
    prefix = np.zeros(n + 1, dtype=np.uint32)
    np.cumsum(data.astype(np.uint32) * powers[:n], dtype=np.uint32, out=prefix[1:])
    word = ~_space_table()[data]
    edges = np.diff(np.concatenate(([False], word, [False])).astype(np.int8))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return starts, ends, (prefix[ends] - prefix[starts]) * inverse[starts] + (ends - starts).astype(np.uint32)


def _shingles(hashes: Any) -> Any:
    import numpy as np

    # combine three word hashes into one shingle hash without building the shingle strings
    return (hashes[:-2] * np.uint32(0x9E3779B1)) ^ (hashes[1:-1] * np.uint32(0x85EBCA77)) \
        ^ (hashes[2:] * np.uint32(0xC2B2AE3D))


@lru_cache(maxsize=1)
def _space_table() -> Any:
    import numpy as np

    table = np.zeros(256, dtype=bool)
    table[[9, 10, 11, 12, 13, 32]] = True
    return table


@lru_cache(maxsize=1)
def _permutations() -> Any:
    import numpy as np

    rng = np.random.RandomState(1)
    # odd multipliers make h -> a*h + b (mod 2^32) a bijection: one random permutation per hash function
    a = rng.randint(0, 1 << 31, NUM_PERM, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = rng.randint(0, 1 << 32, NUM_PERM, dtype=np.uint64).astype(np.uint32)
    return np.array([a, b])


def signature(text: str) -> Any:
    """MinHash signature (uint32 array) of the text's word 3-grams (single words for very short texts)."""
    import numpy as np

    hashes = _word_hashes(text)
    if len(hashes) >= 3:
        shingles = _shingles(hashes)
    else:
        shingles = hashes if len(hashes) else np.zeros(1, dtype=np.uint32)
    a, b = _permutations()
    return (shingles[:, None] * a[None, :] + b[None, :]).min(axis=0)


def signatures(texts: Sequence[str]) -> Any:
    """Signatures of many texts at once (rows equal `signature(text)`), a few numpy calls per batch."""
    import numpy as np

    a, b = _permutations()
    out = np.empty((len(texts), NUM_PERM), dtype=np.uint32)
    if not texts:
        return out
    encoded = [t.lower().encode("utf-8") for t in texts]
    # a newline between texts is whitespace, so no word runs from one text into the next
    doc_start = np.cumsum([0] + [len(e) + 1 for e in encoded[:-1]])
    starts, _, hashes = _byte_word_hashes(b"\n".join(encoded))
    word_doc = np.searchsorted(doc_start, starts, side="right") - 1
    same = word_doc[:-2] == word_doc[2:] if len(hashes) >= 3 else np.zeros(0, dtype=bool)
    shingles = _shingles(hashes)[same] if len(hashes) >= 3 else np.zeros(0, dtype=np.uint32)
    shingle_doc = word_doc[:-2][same] if len(hashes) >= 3 else np.zeros(0, dtype=np.int64)
    counts = np.bincount(shingle_doc, minlength=len(texts))
    has = counts > 0
    if shingles.size:
        first = np.concatenate(([0], np.cumsum(counts)[:-1]))
        out[has] = np.minimum.reduceat(shingles[:, None] * a[None, :] + b[None, :], first[has], axis=0)
    for i in np.flatnonzero(~has):
        out[i] = signature(texts[int(i)])
    return out


def minhash(text: str) -> Any:
    """A datasketch MinHash of the text's word 3-grams (the signature wrapped for MinHashLSH)."""
    from datasketch import MinHash

    return MinHash(num_perm=NUM_PERM, hashvalues=signature(text), permutations=_permutations(), scheme="affine32")


def duplicate_issues(examples: Sequence[Example], *, near: bool = True,
                     threshold: float = NEAR_DUP_THRESHOLD) -> list[Issue]:
    """Exact duplicates by content hash; near-duplicates with MinHash + LSH (never all pairs)."""
    out: list[Issue] = []
    seen: dict[str, Example] = {}
    unique: list[Example] = []
    for ex in examples:
        key = fingerprint(ex)
        first = seen.get(key)
        if first is not None:
            out.append(_issue("duplicate", "warning", ex.line,
                              f"{_at(ex)} repeats line {first.line} exactly; repeated rows are learned twice as hard.",
                              "Delete one of them; --fix keeps the first and removes the rest."))
        else:
            seen[key] = ex
            unique.append(ex)
    if near and len(unique) > 1:
        out += [_near_issue(ex.line, other.line, sim)
                for ex, other, sim in near_duplicate_pairs(unique, threshold=threshold)]
    return out


def near_duplicate_pairs(examples: Sequence[Example], *, threshold: float = NEAR_DUP_THRESHOLD
                         ) -> list[tuple[Example, Example, float]]:
    """(later row, earlier row, estimated similarity) for rows that are almost the same text."""
    import numpy as np

    if not examples:
        return []
    sigs = np.vstack([signatures([ex.all_text() for ex in examples[i:i + _BATCH]])
                      for i in range(0, len(examples), _BATCH)])
    return [(examples[i], examples[j], sim) for i, j, sim in near_pairs(sigs, threshold=threshold)]


def near_pairs(sigs: Any, *, threshold: float = NEAR_DUP_THRESHOLD) -> list[tuple[int, int, float]]:
    """(row, earlier most-similar row, estimated similarity) from a matrix of MinHash signatures, via MinHash LSH."""
    from datasketch import MinHash, MinHashLSH

    # lean towards recall: a false candidate costs one signature comparison, a missed pair is never reported
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM, weights=(0.2, 0.8))
    perms = _permutations()
    pairs = []
    for idx in _sharing_a_band(sigs, lsh.b, lsh.r):
        sig = sigs[idx]
        mh = MinHash(num_perm=NUM_PERM, hashvalues=sig, permutations=perms, scheme="affine32")
        best: tuple[float, int] | None = None
        for cand in lsh.query(mh):
            sim = float((sigs[cand] == sig).mean())
            if sim >= threshold and (best is None or sim > best[0]):
                best = (sim, cand)
        if best is not None:
            pairs.append((idx, best[1], best[0]))
        lsh.insert(idx, mh, check_duplication=False)
    return pairs


def _sharing_a_band(sigs: Any, bands: int, rows: int) -> list[int]:
    """Rows whose signature shares at least one LSH band with another row, in order.

    LSH only ever pairs rows that share a band, so the rest can skip the index: one vectorised pass here
    saves a query and an insert per band for nearly every row of a typical dataset.
    """
    import numpy as np

    rng = np.random.RandomState(7)
    involved = np.zeros(len(sigs), dtype=bool)
    for band in range(bands):
        chunk = sigs[:, band * rows:(band + 1) * rows].astype(np.uint64)
        mix = rng.randint(1, 1 << 62, size=chunk.shape[1], dtype=np.uint64) | np.uint64(1)
        # a random linear mix of the band's values: equal bands give equal keys (the converse only adds rows)
        keys = (chunk * mix[None, :]).sum(axis=1, dtype=np.uint64)
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        involved |= counts[inverse] > 1
    return [int(i) for i in np.flatnonzero(involved)]


def _near_issue(line: int | None, other: int | None, sim: float) -> Issue:
    return _issue("near_duplicate", "warning", line,
                  f"Line {line} is almost the same as line {other} (about {sim:.0%} alike); near-copies add "
                  "little and push the model to memorise.",
                  "Make one of them teach something different, or delete it; --fix keeps both unless you ask it "
                  "to drop near-duplicates (--drop-near-duplicates).")


def overlap_issues(train: Sequence[Example], validation: Sequence[Example]) -> list[Issue]:
    """Validation rows that also appear in the training rows (the score on them would be flattering)."""
    train_keys = {fingerprint(ex): ex for ex in train}
    out = []
    for ex in validation:
        twin = train_keys.get(fingerprint(ex))
        if twin is not None:
            out.append(_issue("train_val_overlap", "error", ex.line,
                              f"Validation line {ex.line} is also in the training data (line {twin.line}); the "
                              "validation score would measure memory, not skill.",
                              "Remove it from one of the two files; --fix removes it from the validation set."))
    return out


# ---------------------------------------------------------------- lengths


def estimate_tokens(ex: Example) -> int:
    """Fast token estimate: about 4 characters per token, plus a few per turn for the chat template."""
    if ex.tokens is not None:
        return sum(len(t) for t in ex.tokens) // 4 + len(ex.tokens) // 2 + 2
    return sum(len(m.content) // 4 + 4 for m in ex.messages) + 2


def estimate_counter(examples: Sequence[Example]) -> list[int]:
    """Token estimates for many rows."""
    return [estimate_tokens(ex) for ex in examples]


def tokenizer_counter(model: str) -> TokenCounter:
    """Exact counts with `model`'s tokenizer and chat template (loaded lazily, offline)."""
    from tools.train.catalog import load_tokenizer

    tok = load_tokenizer(model)

    def count(examples: Sequence[Example]) -> list[int]:
        out = []
        for ex in examples:
            if ex.kind == "chat":
                msgs = [m.model_dump() for m in ex.messages]
                out.append(len(tok.apply_chat_template(msgs, tokenize=True, return_dict=False)))
            else:
                out.append(len(tok(ex.text)["input_ids"]))
        return out

    return count


def length_issues(examples: Sequence[Example], lengths: Sequence[int], context: int) -> list[Issue]:
    """Rows longer than the context (their end would be cut off, often the end-of-turn marker)."""
    return [
        _issue("too_long", "error", ex.line,
               f"{_at(ex)} is about {n:,} tokens, longer than the {context:,}-token context; training would cut "
               "off its end, and a model that never sees the end of an answer does not learn to stop.",
               "Shorten the answer or split the conversation, or raise the context; --fix drops rows that do not "
               "fit.")
        for ex, n in zip(examples, lengths, strict=True) if n > context
    ]


def outlier_issues(examples: Sequence[Example]) -> list[Issue]:
    """Answers far shorter or far longer than the rest (the model copies the lengths it sees)."""
    chat = [ex for ex in examples if ex.kind == "chat" and ex.answer().strip()]
    return _outliers([ex.line for ex in chat], [len(ex.answer().split()) for ex in chat])


def _outliers(lines: Sequence[int | None], words: Sequence[int]) -> list[Issue]:
    if len(words) < MIN_EXAMPLES:
        return []
    median = statistics.median(words)
    out = []
    for line, n in zip(lines, words, strict=True):
        if n * OUTLIER_FACTOR < median:
            out.append(_issue("length_outlier", "warning", line,
                              f"Line {line}: the answer has {n} words, far shorter than the usual {median:.0f}.",
                              "Check it is complete; short answers teach the model to stop early."))
        elif n > median * OUTLIER_FACTOR and n > 50:
            out.append(_issue("length_outlier", "warning", line,
                              f"Line {line}: the answer has {n} words, far longer than the usual {median:.0f}.",
                              "Check it is meant to be this long; long outliers make answers ramble."))
    return out


# ---------------------------------------------------------------- size and labels


def size_issues(examples: Sequence[Example] | int) -> list[Issue]:
    """Too few rows to learn from (minimum 10, recommended 50–100); takes the rows or their count."""
    n = examples if isinstance(examples, int) else len(examples)
    if n < MIN_EXAMPLES:
        return [_issue("too_few_examples", "error", None,
                       f"Only {n} usable example{'s' * (n != 1)}; fine-tuning needs at least {MIN_EXAMPLES}.",
                       "Add more examples (50–100 is a good first round); the wizard can draft them with you.")]
    if n < RECOMMENDED_EXAMPLES:
        return [_issue("too_few_examples", "info", None,
                       f"{n} examples is enough to start; 50–100 gives noticeably better results.",
                       "Add examples for the task kinds that matter most, 20 high-quality ones beat 100 generic.")]
    return []


def label_issues(examples: Sequence[Example], validation: Sequence[Example] = (),
                 labels: Sequence[str] = ()) -> list[Issue]:
    """Class imbalance, labels outside the allowed set, and validation labels never seen in training."""
    rows = [ex for ex in examples if ex.kind == "classification" and ex.label]
    if not rows:
        return []
    counts = Counter(ex.label or "" for ex in rows)
    out = balance_issues(counts)
    for ex in rows:
        out += _allowed_label_issues(ex, labels)
    return out + _unseen_label_issues(validation, counts)


def balance_issues(counts: Counter[str]) -> list[Issue]:
    """One class only, or the largest class far bigger than the smallest."""
    if len(counts) == 1:
        return [_issue("label_imbalance", "error", None,
                       f"Every example has the same label ('{next(iter(counts))}'); there is nothing to tell apart.",
                       "Add examples of the other classes.")]
    if len(counts) > 1:
        (big, nbig), (small, nsmall) = counts.most_common(1)[0], counts.most_common()[-1]
        if nbig > IMBALANCE_RATIO * nsmall:
            return [_issue("label_imbalance", "warning", None,
                           f"Classes are unbalanced: '{big}' has {nbig} examples, '{small}' only {nsmall}; "
                           f"the model will lean towards '{big}'.",
                           f"Add examples of '{small}' (aim for no class under a third of the largest).")]
    return []


def _allowed_label_issues(ex: Example, labels: Sequence[str]) -> list[Issue]:
    if not labels or ex.label is None or ex.label in labels:
        return []
    return [_issue("unseen_label", "error", ex.line,
                   f"{_at(ex)} has label '{ex.label}', which is not one of the project's labels "
                   f"({', '.join(sorted(labels))}).", "Fix the spelling or add the label to the project.")]


def _unseen_label_issues(validation: Sequence[Example], counts: Counter[str]) -> list[Issue]:
    return [_issue("unseen_label", "error", ex.line,
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
    return [_issue("thin_category", "info", None,
                   f"Some task kinds have few examples next to the rest: {thin}.",
                   "Add 10–20 examples for each kind the model must handle well (20–30 for essentials like "
                   "requirements and communication).")]


# ---------------------------------------------------------------- the whole check


def _percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    idx = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[idx]


class Analysis:
    """One pass over the rows: row checks at once, a few compact facts per row kept for the dataset-wide ones.

    Holding facts instead of rows keeps memory small (a few hundred bytes a row), so a file of any size can
    be checked while it streams past.
    """

    def __init__(self, *, model: str | None = None, context: int | None = None, labels: Sequence[str] = (),
                 near_duplicates: bool = True, use_embeddings: bool = False) -> None:
        self.model = model
        self.counter = tokenizer_counter(model) if model else estimate_counter
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
        self.answer_words: list[int] = []
        self.seen: dict[str, int | None] = {}
        self.sig_lines: list[int | None] = []
        self.sig_blocks: list[Any] = []
        self._pending: list[Example] = []
        self._pending_unique: list[bool] = []

    def add(self, ex: Example) -> None:
        """Check one row and keep what the dataset-wide checks need."""
        from tools.dataset.coverage import classify_keywords

        self.n += 1
        if ex.line is None:
            # rows made in memory have no file line: number them by position so every issue still points somewhere
            ex = ex.model_copy(update={"line": self.n})
        self.issues += row_issues(ex)
        self.issues += privacy_issues(ex)
        self.kinds[ex.kind] += 1
        if ex.kind == "chat":
            self.roles.update(m.role for m in ex.messages)
            self.turns[len(ex.messages)] += 1
            answer = ex.answer()
            if answer.strip():
                self.answer_lines.append(ex.line)
                self.answer_words.append(len(answer.split()))
            kind = classify_keywords(ex.prompt())
            if kind is None and self.use_embeddings:
                self.unmatched.append((len(self.task_kinds), ex.prompt()))
            self.task_kinds.append(kind)
        elif ex.kind == "classification" and ex.label:
            self.label_counts[ex.label] += 1
            self.issues += _allowed_label_issues(ex, self.labels)
        elif ex.kind == "ner":
            self.entity_tags.update(t[2:] for t in ex.tags or [] if t.startswith("B-"))
        key = fingerprint(ex)
        first = self.seen.get(key, -1)
        if first != -1:
            self.issues.append(_issue("duplicate", "warning", ex.line,
                                      f"{_at(ex)} repeats line {first} exactly; repeated rows are learned twice "
                                      "as hard.", "Delete one of them; --fix keeps the first and removes the rest."))
        else:
            self.seen[key] = ex.line
        self._pending.append(ex)
        self._pending_unique.append(first == -1)
        if len(self._pending) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        rows, unique = self._pending, self._pending_unique
        self._pending, self._pending_unique = [], []
        if not rows:
            return
        lengths = self.counter(rows)
        self.lengths += lengths
        self.issues += length_issues(rows, lengths, self.context)
        if self.near_duplicates:
            kept = [ex for ex, u in zip(rows, unique, strict=True) if u]
            if kept:
                self.sig_blocks.append(signatures([ex.all_text() for ex in kept]))
                self.sig_lines += [ex.line for ex in kept]

    def finish(self, validation: Sequence[Example] = ()) -> tuple[list[Issue], dict[str, Any]]:
        """The dataset-wide checks and the stats; returns (issues sorted by line, stats)."""
        import numpy as np

        from tools.dataset.coverage import classify, summarise

        self._flush()
        issues = self.issues
        if self.sig_blocks and len(self.sig_lines) > 1:
            sigs = np.vstack(self.sig_blocks)
            issues += [_near_issue(self.sig_lines[i], self.sig_lines[j], sim) for i, j, sim in near_pairs(sigs)]
        issues += _outliers(self.answer_lines, self.answer_words)
        issues += size_issues(self.n)
        if self.label_counts:
            issues += balance_issues(self.label_counts) + _unseen_label_issues(validation, self.label_counts)
        for ex in validation:
            twin = self.seen.get(fingerprint(ex), -1)
            if twin != -1:
                issues.append(_issue("train_val_overlap", "error", ex.line,
                                     f"Validation line {ex.line} is also in the training data (line {twin}); the "
                                     "validation score would measure memory, not skill.",
                                     "Remove it from one of the two files; --fix removes it from the validation set."))
            issues += [i.model_copy(update={"message": f"In the validation file: {i.message}"})
                       for i in row_issues(ex) if i.severity == "error"]
        stats: dict[str, Any] = {
            "examples": self.n,
            "kinds": dict(self.kinds),
            "tokens": _length_stats(self.lengths),
            "token_counting": f"tokenizer of {self.model}" if self.model else "estimate: about 4 characters per token",
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
    """Run every check and gather the stats the report shows; returns (issues, stats)."""
    run = Analysis(model=model, context=context, labels=labels, near_duplicates=near_duplicates,
                   use_embeddings=use_embeddings)
    for ex in examples:
        run.add(ex)
    return run.finish(validation)


def default_context(model: str | None) -> int:
    """The context to check against: 4096 (the training default), or less when the model supports less."""
    if not model:
        return DEFAULT_CONTEXT
    from tools.train.catalog import resolve

    return min(DEFAULT_CONTEXT, resolve(model).context)


def _length_stats(lengths: Sequence[int]) -> dict[str, int]:
    ordered = sorted(lengths)
    return {"min": ordered[0] if ordered else 0, "median": _percentile(ordered, 0.5),
            "p95": _percentile(ordered, 0.95), "max": ordered[-1] if ordered else 0, "total": sum(ordered)}


def check_examples(examples: Iterable[Example], *, model: str | None = None, context: int | None = None,
                   validation: Sequence[Example] = (), labels: Sequence[str] = (),
                   near_duplicates: bool = True, use_embeddings: bool = False) -> list[Issue]:
    """Every issue in some canonical rows (no file involved): the pure core of `mtw check`."""
    return analyse(list(examples), model=model, context=context, validation=validation, labels=labels,
                   near_duplicates=near_duplicates, use_embeddings=use_embeddings)[0]


def validation_path_for(path: str | Path) -> Path | None:
    """The validation file that sits next to a training file, if any (name.validation.jsonl, validation.jsonl…)."""
    path = Path(path)
    names = [f"{path.stem}.validation{path.suffix}", f"{path.stem}.val{path.suffix}"]
    if path.stem in ("train", "training"):
        names += [f"{n}{path.suffix}" for n in ("validation", "val", "valid", "dev")]
    for name in names:
        candidate = path.with_name(name)
        if candidate.is_file() and candidate != path:
            return candidate
    return None


def check_file(path: str | Path, *, model: str | None = None, context: int | None = None,
               format: str | None = None, validation: str | Path | None = None,
               use_embeddings: bool = False, column_map: dict[str, str] | None = None) -> DatasetReport:
    """Check a dataset file while it streams past; a validation file next to it is checked for overlap too."""
    from tools.dataset.readers import FORMATS, NOT_DATASETS, FileNotes, iter_examples, read_dataset, renumber

    read_issues: list[Issue] = []
    notes = FileNotes()
    detected: list[str] = []
    run = Analysis(model=model, context=context, use_embeddings=use_embeddings)
    for ex in iter_examples(path, format, issues=read_issues, notes=notes, detected=detected,
                            column_map=column_map):
        run.add(ex)
    fmt = detected[0] if detected else (format or "empty")
    val_path = Path(validation) if validation else validation_path_for(path)
    val_rows: list[Example] = []
    if val_path is not None:
        val_rows = read_dataset(val_path, fmt if fmt in FORMATS else None, column_map=column_map).examples
    issues, stats = run.finish(val_rows)
    records = notes.records
    stats.update(container=notes.container, encoding=notes.encoding, records=records)
    if notes.numbering == "record":
        stats["numbering"] = "record"
    if val_path is not None:
        stats["validation_file"] = str(val_path)
    file_issues = notes.issues() + read_issues
    if fmt in ("dpo", "kto"):
        file_issues.insert(0, preference_issue(fmt, run.n))
    if run.n == 0:
        # the size check would only say "0 examples"; say why nothing was read instead
        issues = [i for i in issues if i.code != "too_few_examples"]
        if fmt not in NOT_DATASETS:
            file_issues.insert(0, no_examples_issue(path, records, file_issues))
    all_issues = renumber(file_issues + issues, notes)
    return DatasetReport(format=fmt, examples=run.n, ok=not any(i.severity == "error" for i in all_issues),
                         issues=all_issues, stats=stats)


def preference_issue(fmt: str, n: int) -> Issue:
    """Preference data is recognised but not trained: one error saying what it is and what to do."""
    if fmt == "dpo":
        what = (f"This is preference data (DPO): {n} prompts, each with a chosen and a rejected answer. It teaches "
                "which of two answers is better, which needs preference training, not the supervised fine-tuning "
                "mtw does; training on it as it is would teach the rejected answers too.")
        fix = ("To fine-tune on the chosen answers only: mtw check FILE --fix chosen.jsonl writes them as ordinary "
               "examples (the rejected ones are left out); then train on chosen.jsonl.")
    else:
        what = (f"This is preference data (KTO): {n} conversations, each labelled desirable (true) or undesirable "
                "(false). mtw does supervised fine-tuning, which would teach the undesirable answers as if they "
                "were good.")
        fix = ("To fine-tune on the desirable answers only: mtw check FILE --fix good.jsonl keeps the rows labelled "
               "true and leaves out the rest; then train on good.jsonl.")
    return _issue("preference_data", "error", None, what, fix)


def no_examples_issue(path: str | Path, records: int, found: Sequence[Issue]) -> Issue:
    """The one error for a file that yielded no examples, saying why (empty, unreadable, unknown columns)."""
    name = Path(path).name
    errors = [i for i in found if i.severity == "error"]
    codes = {i.code for i in errors}
    if records == 0 and not errors:
        why = f"{name} holds no records (it is empty, only blank lines, or an empty list `[]`)"
        fix = "Add examples, one JSON object per line, e.g. {\"messages\": [{\"role\": \"user\", ...}, ...]}."
    elif codes == {"unknown_format"} or "unknown_format" in codes:
        why = f"none of the {records} record(s) in {name} has the fields of a known format"
        fix = ("Name the columns with --map, e.g. --map prompt=question --map response=answer, or "
               "--map text=SMS --map label=Label.")
    elif codes <= {"invalid_json", "not_object", "encoding"}:
        why = f"none of the {records} record(s) in {name} could be read (see the lines below)"
        fix = "Fix the broken lines listed below; each line must be one complete JSON object."
    else:
        why = f"every one of the {records} record(s) in {name} has a problem that stops it being used"
        fix = "Fix the problems listed below, starting with the first line."
    return _issue("no_examples", "error", None, f"No examples: {why}.", fix)



