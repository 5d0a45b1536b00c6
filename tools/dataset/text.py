"""One row's text, split into words once for every check that reads it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass
class RowText:
    """The text of a row (`Example.all_text()`) with its word lists worked out on first use and kept.

    Splitting a few KB of text into words is the costliest step of most checks; privacy, duplicates and the
    near-duplicate word sets all read the same words, so they share one split.
    """

    text: str

    @cached_property
    def lower_words(self) -> list[str]:
        """The lower-cased, whitespace-separated words."""
        return self.text.lower().split()

    @cached_property
    def normalised(self) -> str:
        """Lower-case, whitespace-collapsed text: what 'the same example' means for duplicate checks."""
        return " ".join(self.lower_words)
