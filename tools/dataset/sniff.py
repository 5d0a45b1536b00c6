"""What a file is, judged by its first bytes and its name: the one table of file signatures and dataset suffixes.

`mtw check`, the chat's upload route and the dataset question all read this table; each says what it found in its
own words (a check report, a refused upload, a question asked again).
"""

from __future__ import annotations

import codecs
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DATASET_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt")
"""File types a dataset upload keeps (the readers tell CSV / TSV from JSON by the suffix)."""
SNIFF_BYTES = 64 * 1024
"""How much of an upload is looked at to tell text from anything else."""

Kind = Literal["image", "media", "document", "zip", "archive", "data"]


@dataclass(frozen=True)
class Signature:
    """The bytes a kind of file starts with, and what it is in plain words."""

    magic: bytes
    what: str
    kind: Kind
    inner: bytes = b""
    """What a RIFF file holds, at byte 8 of its header (WEBP: an image)."""
    named_by_check: bool = False
    """`mtw check` names it; the others it reports as binary data by their NUL bytes (short signatures such as
    a bitmap's "BM" also start plain text)."""


SIGNATURES = (
    Signature(b"\x89PNG", "a PNG image", "image", named_by_check=True),
    Signature(b"\xff\xd8\xff", "a JPEG image", "image", named_by_check=True),
    Signature(b"GIF8", "a GIF image", "image"),
    Signature(b"BM", "a bitmap image", "image"),
    Signature(b"II*\x00", "a TIFF image", "image"),
    Signature(b"MM\x00*", "a TIFF image", "image"),
    Signature(b"RIFF", "a WebP image", "image", inner=b"WEBP"),
    Signature(b"RIFF", "audio, video or an image (RIFF)", "media"),
    Signature(b"%PDF", "a PDF document", "document", named_by_check=True),
    Signature(b"PK\x03\x04", "a zip archive (or an Excel / Word file)", "zip", named_by_check=True),
    Signature(b"\x1f\x8b", "gzip-compressed", "archive", named_by_check=True),
    Signature(b"BZh", "bzip2-compressed", "archive"),
    Signature(b"\xfd7zXZ", "xz-compressed", "archive"),
    Signature(b"7z\xbc\xaf", "a 7-Zip archive", "archive"),
    Signature(b"Rar!", "a RAR archive", "archive"),
    Signature(b"PAR1", "a Parquet file", "data", named_by_check=True),
    Signature(b"SQLite format 3", "an SQLite database", "data", named_by_check=True),
)
"""Most specific first: a WebP image is a RIFF file too."""


def signature(head: bytes) -> Signature | None:
    """The first signature HEAD (a file's first bytes) carries, or None."""
    return next((s for s in SIGNATURES
                 if head.startswith(s.magic) and (not s.inner or head[8:8 + len(s.inner)] == s.inner)), None)


def head_of(path: str | Path, size: int = SNIFF_BYTES) -> bytes:
    """A file's first SIZE bytes."""
    with open(path, "rb") as f:
        return f.read(size)


def binary_kind(path: Path) -> str | None:
    """What a binary file is ("gzip-compressed" …), or None for text; UTF-16 text is not binary."""
    head = head_of(path, 8192)
    found = signature(head)
    if found is not None and found.named_by_check:
        return found.what
    if b"\x00" in head and not utf16(head):
        return "binary data (it contains NUL bytes)"
    return None


def utf16(head: bytes) -> bool:
    """Text saved as UTF-16 (a byte-order mark, or every other byte NUL): text, not binary."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    return len(head) >= 4 and ((head[1] == 0 and head[3] == 0 and head[0] != 0)
                               or (head[0] == 0 and head[2] == 0 and head[1] != 0))


def looks_like_text(head: bytes) -> bool:
    """Bytes, not UTF-8: a Latin-1 CSV is still text (`mtw check` reports its encoding); binary has NULs and
    control characters."""
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return True
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return b"\x00" not in head and controls <= len(head) // 100


def is_docx(data: bytes) -> bool:
    """A zip archive that is a Word document."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return "word/document.xml" in z.namelist()
    except zipfile.BadZipFile:
        return False


def upload_refusal(name: str, data: bytes) -> str | None:
    """Why the wizard will not take this file (in words, with what to do), or None when it can read it.

    Judged by content, not by the name: JSON/JSONL/CSV/TSV/Markdown/HTML/plain text, PDF and Word (.docx).
    """
    head = data[:SNIFF_BYTES]
    if not data:
        return f"{name} is empty (0 bytes). Pick the file again, or check it was saved before uploading."
    found = signature(head)
    if found is not None and found.kind == "image":
        if found.inner == b"WEBP":
            return f"{name} is a WebP image, not text. Upload your examples as JSONL, CSV or text."
        return (f"{name} is {found.what}, not text. The wizard learns from written examples: upload a JSONL, CSV "
                "or text file (or a PDF / Word document).")
    if found is not None and found.kind == "archive":
        return f"{name} is {found.what}. Unpack it first and upload the file inside."
    if head.startswith(b"%PDF-"):
        return None
    if found is not None and found.kind == "zip":
        return None if is_docx(data) else (
            f"{name} is a zip archive. Unpack it and upload the file inside (Word .docx files are fine).")
    if looks_like_text(head):
        return None
    return (f"{name} does not look like text or a document the wizard can read. Upload JSONL, JSON, CSV, TSV, "
            "Markdown, HTML, plain text, PDF or Word (.docx).")


def not_examples(head: bytes) -> bool:
    """An image, audio / video or a PDF: a file that cannot hold training examples (a dataset question refuses it)."""
    found = signature(head)
    return found is not None and found.kind in ("image", "media", "document")
