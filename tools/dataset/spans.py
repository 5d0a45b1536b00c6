"""Entity spans read from BIO tags: what the dataset shows, drafts and checks, and what evaluation scores."""

from __future__ import annotations

from collections.abc import Sequence


def bio_spans(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """Entity spans (start, end exclusive, type) from BIO tags; a stray I- starts a new span (conlleval's rule)."""
    spans = set()
    start, kind = None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, t = tag.partition("-")
        continues = prefix == "I" and kind == t
        if start is not None and not continues:
            spans.add((start, i, kind or ""))
            start, kind = None, None
        if prefix in ("B", "I") and not continues:
            start, kind = i, t
    return spans
