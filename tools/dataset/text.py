"""One row's text, measured and split into words once for every check that reads it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

# the ASCII characters str.split() treats as whitespace
_SPACE = b"\t\n\x0b\x0c\r \x1c\x1d\x1e\x1f"
# one byte per character: "0" for whitespace, "1" inside a word
_WORD_MASK = bytes(48 if c in _SPACE else 49 for c in range(256))
# ASCII lower-cased, every whitespace character a plain space
_LOWER_SPACED = bytes(32 if c in _SPACE else ord(chr(c).lower()) if c < 128 else c for c in range(256))


def word_mask(text: str) -> bytes | None:
    """For ASCII text, b"1" for each character inside a word and b"0" for whitespace (as str.split sees it).

    Splitting a few KB of text into a list of words is the costliest step of most checks; counting and
    searching this mask answers "how many words", "how many letters" and "any long word" in a few passes of C.
    """
    return text.encode("ascii").translate(_WORD_MASK) if text.isascii() else None


def mask_counts(mask: bytes) -> tuple[int, int]:
    """(words, characters inside words) from a word mask: the same as len(text.split()) and their total length."""
    return mask.count(b"01") + mask.startswith(b"1"), mask.count(b"1")


@dataclass
class RowText:
    """The text of a row (`Example.all_text()`), with what the checks read from it worked out once and kept."""

    text: str

    @cached_property
    def mask(self) -> bytes | None:
        """The word mask of the text (None when it is not ASCII)."""
        return word_mask(self.text)

    @cached_property
    def word_count(self) -> int:
        """How many whitespace-separated words the text has."""
        return mask_counts(self.mask)[0] if self.mask is not None else len(self.lower_words)

    @cached_property
    def lower_words(self) -> list[str]:
        """The lower-cased, whitespace-separated words."""
        return self.text.lower().split()

    @cached_property
    def normalised(self) -> bytes:
        """Lower-case, whitespace-collapsed text, UTF-8: what 'the same example' means for duplicate checks."""
        if self.mask is None:
            return " ".join(self.lower_words).encode("utf-8")
        # ASCII: the same result in a few passes over the bytes, without making a string per word
        spaced = self.text.encode("ascii").translate(_LOWER_SPACED)
        while b"  " in spaced:
            spaced = spaced.replace(b"  ", b" ")
        return spaced.strip(b" ")

    def has_word_of(self, length: int) -> bool:
        """Whether some word is at least `length` characters long."""
        if self.mask is not None:
            return b"1" * length in self.mask
        return max(map(len, self.text.split()), default=0) >= length
