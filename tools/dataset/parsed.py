"""The rows of dataset files parsed once per process: a version's file is never rewritten, so its rows are kept.

Keyed by the file's path, size and modification time (a file written again is read again); only files small enough
to hold in memory are kept, and only the few used last.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from tools.dataset.model import Example
from tools.dataset.readers import read_dataset

KEEP_BYTES = 64 << 20
"""Files larger than this are read again each time (their rows would sit in memory)."""
KEEP_FILES = 4

_rows: OrderedDict[tuple[str, int, int], list[Example]] = OrderedDict()


def _key(path: str | Path) -> tuple[str, int, int] | None:
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    if stat.st_size > KEEP_BYTES:
        return None
    return str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns


def rows_of(path: str | Path) -> list[Example]:
    """The rows of a dataset file (as `read_dataset` reads them), parsed the first time only."""
    key = _key(path)
    if key is not None and key in _rows:
        _rows.move_to_end(key)
        return list(_rows[key])
    rows = read_dataset(path).examples
    if key is not None:
        remember(path, rows, key=key)
    return list(rows)


def remember(path: str | Path, rows: list[Example], *, key: tuple[str, int, int] | None = None) -> None:
    """Keep rows just read from PATH (the check reads every row anyway), so the next reader does not parse it."""
    key = key or _key(path)
    if key is None:
        return
    _rows[key] = list(rows)
    _rows.move_to_end(key)
    while len(_rows) > KEEP_FILES:
        _rows.popitem(last=False)
