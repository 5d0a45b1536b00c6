"""Uploads into the chat: a safe base name, a size limit, only the kinds of file the wizard can read, stored once."""

from __future__ import annotations

import hashlib
import io
import os
import re
import unicodedata
import zipfile
from pathlib import Path

MAX_NAME = 120
DEFAULT_MAX_UPLOAD_MB = 200
_UNSAFE = re.compile(r"[^\w.\- ()+,@=]")
_IMAGES = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
           b"BM": "a bitmap image", b"II*\x00": "a TIFF image", b"MM\x00*": "a TIFF image"}
_ARCHIVES = {b"\x1f\x8b": "gzip-compressed", b"BZh": "bzip2-compressed", b"\xfd7zXZ": "xz-compressed",
             b"7z\xbc\xaf": "a 7-Zip archive", b"Rar!": "a RAR archive"}
SNIFF_BYTES = 64 * 1024


def safe_name(name: str) -> str:
    """NAME reduced to a base name that is safe to write anywhere: no folders, `..`, control characters or
    odd symbols, at most MAX_NAME characters with its extension kept; "upload" when nothing is left."""
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(c for c in unicodedata.normalize("NFC", base) if unicodedata.category(c)[0] != "C")
    base = _UNSAFE.sub("_", base).strip(" .")
    if len(base) > MAX_NAME:
        stem, dot, ext = base.rpartition(".")
        ext = ext[:16] if dot and stem else ""
        base = base[:MAX_NAME - len(ext) - 1].rstrip(" .") + ("." + ext if ext else "")
    return base or "upload"


def refusal(name: str, data: bytes) -> str | None:
    """Why the wizard will not take this file (in words, with what to do), or None when it can read it.

    Judged by content, not by the name: JSON/JSONL/CSV/TSV/Markdown/HTML/plain text, PDF and Word (.docx).
    """
    head = data[:SNIFF_BYTES]
    if not data:
        return f"{name} is empty (0 bytes). Pick the file again, or check it was saved before uploading."
    for magic, kind in _IMAGES.items():
        if head.startswith(magic):
            return (f"{name} is {kind}, not text. The wizard learns from written examples: upload a JSONL, CSV "
                    "or text file (or a PDF / Word document).")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return f"{name} is a WebP image, not text. Upload your examples as JSONL, CSV or text."
    for magic, kind in _ARCHIVES.items():
        if head.startswith(magic):
            return f"{name} is {kind}. Unpack it first and upload the file inside."
    if head.startswith(b"%PDF-"):
        return None
    if head.startswith(b"PK\x03\x04"):
        return None if _is_docx(data) else (
            f"{name} is a zip archive. Unpack it and upload the file inside (Word .docx files are fine).")
    if _is_text(head):
        return None
    return (f"{name} does not look like text or a document the wizard can read. Upload JSONL, JSON, CSV, TSV, "
            "Markdown, HTML, plain text, PDF or Word (.docx).")


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return "word/document.xml" in z.namelist()
    except zipfile.BadZipFile:
        return False


def _is_text(head: bytes) -> bool:
    # bytes, not UTF-8: a Latin-1 CSV is still text (`mtw check` reports its encoding); binary has NULs and controls
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return True
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return b"\x00" not in head and controls <= len(head) // 100


def project_copy(project: Path, upload: Path) -> Path | None:
    """The project's own copy of UPLOAD: a file under PROJECT with the same bytes (same size first, then hash)."""
    try:
        size = upload.stat().st_size
        digest = _digest(upload)
    except OSError:
        return None
    if not project.is_dir():
        return None
    for path in project.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_size == size and _digest(path) == digest:
                return path
        except OSError:  # a file being replaced meanwhile is not the one
            continue
    return None


def share_file(kept: Path, other: Path) -> None:
    """Make OTHER the very file KEPT is (a hard link swapped in atomically): the bytes are stored once."""
    temp = other.with_name(f".{other.name}.{os.getpid()}.link")
    temp.unlink(missing_ok=True)
    os.link(kept, temp)
    os.replace(temp, other)


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
