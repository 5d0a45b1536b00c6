"""Uploads into the chat: a safe base name, a size limit, and the chat's copies made one file with the project's.

What a file is (and whether the wizard takes it) is judged in tools/dataset/sniff.py, from the one signature table.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

MAX_NAME = 120
DEFAULT_MAX_UPLOAD_MB = 200
_UNSAFE = re.compile(r"[^\w.\- ()+,@=]")


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


def share_file(kept: Path, other: Path) -> None:
    """Make OTHER the very file KEPT is (a hard link swapped in atomically): the bytes are stored once."""
    temp = other.with_name(f".{other.name}.{os.getpid()}.link")
    temp.unlink(missing_ok=True)
    os.link(kept, temp)
    os.replace(temp, other)
