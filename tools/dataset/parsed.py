"""Dataset files parsed once per process: a version's file is never rewritten, so what reading it found is kept.

What is kept is the whole parse (the rows, the problems met on the way, the file-level notes, the format found):
`mtw check`, training's read and the chat's upload all start from it, so a file is parsed once however many of them
look at it. Keyed by the file's path, size and modification time (a file written again is read again); only files
small enough to hold in memory are kept, only the few used last, and only parses of the file as it stands (no
`--format` or `--map`, which read it differently).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tools.dataset.model import Example, Issue
from tools.dataset.notes import FileNotes
from tools.dataset.readers import ReadResult, iter_examples, renumber

KEEP_BYTES = 64 << 20
"""Files larger than this are read again each time (their rows would sit in memory)."""
KEEP_FILES = 4


@dataclass(frozen=True)
class Parse:
    """One complete read of a file: what `iter_examples` yields and gathers on the way."""

    rows: list[Example]
    issues: list[Issue]
    """The problems met reading records (bad JSON, missing fields), before the file-level notes."""
    notes: FileNotes
    detected: list[str]

    def result(self) -> ReadResult:
        """The read as `read_dataset` gives it."""
        fmt = self.detected[0] if self.detected else "empty"
        return ReadResult(format=fmt, examples=list(self.rows),
                          issues=renumber(self.notes.issues() + self.issues, self.notes),
                          container=self.notes.container, encoding=self.notes.encoding, records=self.notes.records)


_parses: OrderedDict[tuple[str, int, int], Parse] = OrderedDict()


def _key(path: str | Path) -> tuple[str, int, int] | None:
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    if stat.st_size > KEEP_BYTES:
        return None
    return str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns


def kept(path: str | Path) -> Parse | None:
    """The kept parse of PATH as it stands now, or None (not read yet in this process, changed since, or too big).

    Each caller gets its own copies of the lists and notes: what one does with them never reaches the next."""
    key = _key(path)
    found = _parses.get(key) if key is not None else None
    if found is None:
        return None
    _parses.move_to_end(key)  # type: ignore[arg-type]
    return Parse(list(found.rows), list(found.issues), copy.deepcopy(found.notes), list(found.detected))


def keep(path: str | Path, parse: Parse) -> None:
    """Keep a complete parse of PATH (read as it stands) for the next reader in this process."""
    key = _key(path)
    if key is None:
        return
    _parses[key] = parse
    _parses.move_to_end(key)
    while len(_parses) > KEEP_FILES:
        _parses.popitem(last=False)


def parse(path: str | Path) -> Parse:
    """The complete read of PATH as it stands: the kept one, or a new read that is then kept."""
    found = kept(path)
    if found is not None:
        return found
    issues: list[Issue] = []
    notes = FileNotes()
    detected: list[str] = []
    rows = list(iter_examples(path, None, issues=issues, notes=notes, detected=detected))
    done = Parse(rows, issues, notes, detected)
    keep(path, done)
    return Parse(list(rows), list(issues), copy.deepcopy(notes), list(detected))


def streamed(path: str | Path, into: list[Example], issues: list[Issue], notes: FileNotes,
             detected: list[str]) -> Iterator[Example]:
    """Read PATH row by row, filling ISSUES, NOTES and DETECTED as `iter_examples` does; a read that reaches the end
    is kept (INTO collects its rows), so whoever reads the file next in this process does not parse it again."""
    small = _key(path) is not None
    for ex in iter_examples(path, None, issues=issues, notes=notes, detected=detected):
        if small:
            into.append(ex)
        yield ex
    if small:
        keep(path, Parse(list(into), list(issues), copy.deepcopy(notes), list(detected)))


def rows_of(path: str | Path) -> list[Example]:
    """The rows of a dataset file (as `read_dataset` reads them), parsed the first time only."""
    return parse(path).rows
