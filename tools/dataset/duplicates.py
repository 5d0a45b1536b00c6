"""Duplicates: exact ones by content hash, near ones by MinHash signatures and LSH banding."""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from tools.dataset.model import Example, Issue
from tools.dataset.rows import at, make_issue
from tools.dataset.text import RowText

NEAR_DUP_THRESHOLD = 0.8
# texts under this many words are compared word by word (3-word shingles miss "23 words, 2 changed") and count
# as near-copies from a lower similarity, since one changed word moves a short text's score a long way
SHORT_WORDS = 60
SHORT_THRESHOLD = 0.7
NUM_PERM = 64
# LSH bands x rows per band: the split datasketch's MinHashLSH chooses for a 0.7 threshold leaning towards recall
# (weights 0.2 / 0.8); a pair at 0.8 shares a band with probability 0.95, at 0.5 with 0.15
BANDS, BAND_ROWS = 10, 6
# word hashes signed per step of the signature loop: 64 x 4,096 x 4 bytes = 1 MB, about a CPU's L2 cache
_SIG_CHUNK = 4096


def fingerprint(ex: Example, text: RowText | None = None) -> str:
    """A content hash of the normalised row: equal for rows that differ only in case or spacing.

    `text` is the row's text when the caller has already split it (the check does, for every row).
    """
    row = text or RowText(ex.all_text())
    return hashlib.blake2b(row.normalised, digest_size=16).hexdigest()


_HASH_BASE = 0x01000193  # odd, so it has an inverse modulo 2^32
_powers: dict[str, Any] = {}


def _power_tables(n: int) -> tuple[Any, Any]:
    """base^i and base^-i modulo 2^32 for i < n (uint32 arithmetic wraps, which is the modulo)."""
    import numpy as np

    if _powers.get("n", 0) < n:
        # grown to twice what is asked: batches vary in size, and each new largest one would rebuild them
        size = max(2 * n, 1 << 16)
        inv = pow(_HASH_BASE, -1, 1 << 32)
        # cumprod gives base^(i+1); one step the other way brings each back to base^i
        _powers["pow"] = np.cumprod(np.full(size, _HASH_BASE, dtype=np.uint32), dtype=np.uint32) * np.uint32(inv)
        _powers["inv"] = np.cumprod(np.full(size, inv, dtype=np.uint32), dtype=np.uint32) * np.uint32(_HASH_BASE)
        _powers["n"] = size
    return _powers["pow"][:n], _powers["inv"][:n]


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
    # a word starts where the mask steps up and ends where it steps down; the steps alternate
    steps = np.flatnonzero(np.diff(_word_table()[data], prepend=np.int8(0), append=np.int8(0)))
    starts, ends = steps[0::2], steps[1::2]
    return starts, ends, (prefix[ends] - prefix[starts]) * inverse[starts] + (ends - starts).astype(np.uint32)


def _shingles(hashes: Any) -> Any:
    import numpy as np

    # combine three word hashes into one shingle hash without building the shingle strings
    return (hashes[:-2] * np.uint32(0x9E3779B1)) ^ (hashes[1:-1] * np.uint32(0x85EBCA77)) \
        ^ (hashes[2:] * np.uint32(0xC2B2AE3D))


@lru_cache(maxsize=1)
def _word_table() -> Any:
    """1 for the bytes that make up words, 0 for ASCII whitespace."""
    import numpy as np

    table = np.ones(256, dtype=np.int8)
    table[[9, 10, 11, 12, 13, 32]] = 0
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
    """MinHash signature (uint32 array) of the text's word 3-grams, or of its words when it is short."""
    return signatures([text])[0]


def signatures(texts: Sequence[str]) -> Any:
    """Signatures of many texts at once, a few numpy calls per batch (no Python loop over words)."""
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
    short = np.bincount(word_doc, minlength=len(texts)) < SHORT_WORDS
    # per word position: a short text's word, or the 3-gram starting there in a longer text (when the 3-gram
    # stays inside its text); positions are in text order already, so the values come out grouped by text
    in_short = short[word_doc]
    grams = np.zeros(len(hashes), dtype=np.uint32)
    inside = np.zeros(len(hashes), dtype=bool)
    if len(hashes) >= 3:
        grams[:-2] = _shingles(hashes)
        inside[:-2] = word_doc[:-2] == word_doc[2:]
    keep = in_short | inside
    values, value_doc = np.where(in_short, hashes, grams)[keep], word_doc[keep]
    counts = np.bincount(value_doc, minlength=len(texts))
    has = counts > 0
    # a text without words gets the signature of one fixed value, so all empty texts are alike
    out[~has] = (np.uint32(0) * a + b)
    docs = np.flatnonzero(has)
    if docs.size:
        first = np.concatenate(([0], np.cumsum(counts)[:-1]))[docs]
        ends = first + counts[docs]
        # the (permutations x values) product is worked out a few thousand values at a time in one reused buffer:
        # it stays in the CPU cache and no fresh memory is touched per chunk, which made this 3x faster
        buf = np.empty((NUM_PERM, _SIG_CHUNK + int(counts.max())), dtype=np.uint32)
        col_a, col_b = a[:, None], b[:, None]
        i = 0
        while i < len(docs):
            j = max(i + 1, int(np.searchsorted(ends, first[i] + _SIG_CHUNK, side="right")))
            lo, hi = first[i], ends[j - 1]
            view = buf[:, :hi - lo]
            np.multiply(col_a, values[None, lo:hi], out=view)
            np.add(view, col_b, out=view)
            out[docs[i:j]] = np.minimum.reduceat(view, first[i:j] - lo, axis=1).T
            i = j
    return out


def word_sets(texts: Sequence[str]) -> list[bytes | None]:
    """For each short text its set of distinct lower-cased words (as sorted 64-bit hashes), None for longer texts.

    A 64-value signature estimates a short text's similarity too roughly (±0.06) for a 0.7 threshold, so two
    short texts that LSH brings together are compared word by word.
    """
    return [word_set(RowText(text)) for text in texts]


def word_set(text: RowText) -> bytes | None:
    """One text's word set (see word_sets)."""
    if text.word_count >= SHORT_WORDS:
        return None
    return array("q", sorted({hash(w) for w in text.lower_words})).tobytes()


def _jaccard(a: bytes, b: bytes) -> float:
    import numpy as np

    x, y = np.frombuffer(a, dtype=np.int64), np.frombuffer(b, dtype=np.int64)
    both = len(np.intersect1d(x, y, assume_unique=True))
    return both / max(1, len(x) + len(y) - both)


def near_pairs(sigs: Any, sets: Sequence[bytes | None] | None = None) -> list[tuple[int, int, float]]:
    """(row, an earlier near-identical row, similarity) from a matrix of MinHash signatures, by LSH banding.

    Rows whose signatures agree on a whole band land in one bucket; each row is compared with the first and the
    previous row of each of its buckets only, so the work stays linear however many rows look alike (datasketch's
    MinHashLSH returns every row of a bucket and went quadratic on templated rows: see bench/README.md). Two
    short texts (with `sets`) are near-copies when at least SHORT_THRESHOLD of their words are shared; any other
    pair when its estimated similarity of word 3-grams reaches NEAR_DUP_THRESHOLD.
    """
    import numpy as np

    n = len(sigs)
    best_sim = np.zeros(n)
    best_row = np.full(n, -1, dtype=np.int64)
    short = np.array([s is not None for s in sets]) if sets is not None else np.zeros(n, dtype=bool)
    rng = np.random.RandomState(7)
    for band in range(BANDS):
        chunk = sigs[:, band * BAND_ROWS:(band + 1) * BAND_ROWS].astype(np.uint64)
        mix = rng.randint(1, 1 << 62, size=BAND_ROWS, dtype=np.uint64) | np.uint64(1)
        # a random linear mix of the band's values: equal bands give equal keys (the converse only adds candidates)
        keys = (chunk * mix[None, :]).sum(axis=1, dtype=np.uint64)
        order = np.argsort(keys, kind="stable")  # within a bucket, rows stay in file order
        ordered = keys[order]
        later = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
        if not later.size:
            continue
        starts = np.maximum.accumulate(np.where(np.r_[True, ordered[1:] != ordered[:-1]], np.arange(n), 0))
        rows = order[later]
        for earlier in (order[later - 1], order[starts[later]]):
            _compare(sigs, rows, earlier, short, sets, best_sim, best_row)
    found = np.flatnonzero(best_row >= 0)
    return [(int(i), int(best_row[i]), float(best_sim[i])) for i in found]


def _compare(sigs: Any, rows: Any, earlier: Any, short: Any, sets: Sequence[bytes | None] | None,
             best_sim: Any, best_row: Any) -> None:
    """Keep, per row, the most similar earlier candidate that passes its threshold."""
    import numpy as np

    for lo in range(0, len(rows), 65536):
        i, j = rows[lo:lo + 65536], earlier[lo:lo + 65536]
        est = (sigs[i] == sigs[j]).mean(axis=1)
        both_short = short[i] & short[j]
        hit = ~both_short & (est >= NEAR_DUP_THRESHOLD) & (est > best_sim[i])
        best_sim[i[hit]], best_row[i[hit]] = est[hit], j[hit]
        # short pairs are confirmed word by word; the estimate only picks which are worth it
        maybe = np.flatnonzero(both_short & (est >= SHORT_THRESHOLD - 0.1)) if sets is not None else ()
        for k in maybe:
            a, b = int(i[k]), int(j[k])
            sim = _jaccard(sets[a] or b"", sets[b] or b"")  # type: ignore[index]
            if sim >= SHORT_THRESHOLD and sim > best_sim[a]:
                best_sim[a], best_row[a] = sim, b


def duplicate_issue(ex: Example, first: int | None) -> Issue:
    """A row that repeats an earlier one exactly."""
    return make_issue("duplicate", "warning", ex.line,
                      f"{at(ex)} repeats line {first} exactly; repeated rows are learned twice as hard.",
                      "Delete one of them; --fix keeps the first and removes the rest.")


def near_issue(line: int | None, other: int | None, sim: float) -> Issue:
    """A row that is almost the same as an earlier one."""
    return make_issue("near_duplicate", "warning", line,
                  f"Line {line} is almost the same as line {other} (about {sim:.0%} alike); near-copies add "
                  "little and push the model to memorise.",
                  "Make one of them teach something different, or delete it; --fix keeps both unless you ask it "
                  "to drop near-duplicates (--drop-near-duplicates).")


