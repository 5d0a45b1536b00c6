"""One way in for an uploaded dataset: judged by the one signature table, kept as a version of its own, joined to
the project's dataset when it adds to it; its rows parsed once in this process.

The chat calls `take_upload` once and keeps the version it returns; `kept_copy` then finds the project's copy of an
upload without looking through the project.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tools.dataset.duplicates import fingerprint
from tools.dataset.parsed import rows_of
from tools.dataset.sniff import head_of, not_examples
from tools.dataset.store import HASH_CHARS, DatasetStore, Version
from tools.errors import UsageError
from tools.project import project_dir, slugify

Mode = Literal["new", "add"]
"""new: the upload is the dataset (unless the project has drafts, which it joins); add: it joins the dataset."""

_taken: dict[tuple[str, int, int], Path] = {}
"""Uploads taken in by this process (path, size, mtime) and the version file that holds their bytes."""


class UploadRefused(UsageError):
    """An upload that cannot be a dataset: what it is (`message`) and what to attach instead (`fix`)."""

    def __init__(self, template: str, fix: str, name: str) -> None:
        self.template = template
        self.name = name
        super().__init__(template.replace("{name}", name), fix)

    def words(self, name: str) -> str:
        """The sentence and its fix, with the file's name written as NAME (the chat sets it in bold)."""
        return f"{self.template.replace('{name}', name)} {self.fix}"


@dataclass(frozen=True)
class Taken:
    """What taking an upload in made."""

    version: Version
    """The version the project works with now: the upload's own, or the dataset it joined."""
    upload: Version
    """The upload's own version: its bytes as sent."""
    added: int | None = None
    """Examples it added to the dataset it joined (None: it is the dataset)."""
    already: int = 0
    """Its examples the dataset held already (left out)."""


def refusal(path: Path, name: str) -> UploadRefused | None:
    """Why an upload cannot be a dataset (empty, an image or a PDF, unreadable), or None when it may be one."""
    try:
        size = path.stat().st_size
        head = head_of(path, 16)
    except OSError as exc:
        return UploadRefused(f"I could not read {name} ({exc.strerror}).", "Please attach it again.", name)
    if size == 0:
        return UploadRefused("{name} is empty (0 bytes).", "Attach the file that has your examples in it.", name)
    if not_examples(head):
        return UploadRefused("{name} looks like an image or a PDF, not a file of examples.",
                             "Attach a JSONL, JSON, CSV or TSV file (one example per line or row).", name)
    return None


def take_upload(project: str, path: str | Path, name: str, mode: Mode = "new",
                current: str | Path | None = None) -> Taken:
    """Take an uploaded file into PROJECT as its own version (same-name uploads never overwrite each other).

    The project has one dataset: an upload after drafting, or one that adds (`mode="add"`) to the CURRENT file,
    joins it as a new version holding the examples it did not hold yet. Raises UploadRefused or UsageError.
    """
    src = Path(path)
    refused = refusal(src, name)
    if refused is not None:
        raise refused
    store = DatasetStore(project)
    upload = store.import_file(src, name=name)
    try:
        stat = src.stat()
        _taken[(str(src.resolve()), stat.st_size, stat.st_mtime_ns)] = upload.path
    except OSError:
        pass  # gone meanwhile: its copy is kept all the same
    if not store.examples() and not (mode == "add" and current):
        return Taken(upload, upload)
    return _join(store, Path(current or upload.path), upload)


def _join(store: DatasetStore, current: Path, upload: Version) -> Taken:
    """A new version of the dataset: what it holds (or the current file) plus the upload's examples it does not
    hold yet (the same file uploaded twice adds nothing)."""
    seed(store, current)
    held = {fingerprint(ex) for ex in store.examples()}
    added = already = 0
    for ex in rows_of(upload.path):
        ex = ex.model_copy(update={"line": None})
        if fingerprint(ex) in held:
            already += 1
            continue
        held.add(fingerprint(ex))
        store.add(ex)
        added += 1
    return Taken(store.save(note=f"added {upload.path.name}"), upload, added, already)


def seed(store: DatasetStore, current: str | Path | None) -> DatasetStore:
    """The project's one dataset: the file it uses now (CURRENT) is taken in first while the store is empty."""
    if not store.examples() and current:
        for ex in rows_of(current):
            store.add(ex.model_copy(update={"line": None}))
    return store


def kept_copy(project: str, upload: Path) -> Path | None:
    """The project's own copy of UPLOAD (a dataset version or a kept document with the same bytes), or None.

    Both are named by their content hash, so the upload is looked up, not searched for; an upload this process took
    in is not even hashed again.
    """
    try:
        stat = upload.stat()
    except OSError:
        return None
    known = _taken.get((str(upload.resolve()), stat.st_size, stat.st_mtime_ns))
    if known is not None and known.is_file():
        return known
    folder = project_dir(slugify(project))
    if not folder.is_dir():
        return None
    try:
        digest = _digest(upload)
    except OSError:
        return None
    short = digest[:HASH_CHARS]
    candidates = [*(folder / "dataset" / "versions").glob(f"{short}.*"), *(folder / "documents" / short).glob("*")]
    for path in candidates:
        try:
            if (path.is_file() and not path.is_symlink() and ".validation." not in path.name
                    and path.stat().st_size == stat.st_size and _digest(path) == digest):
                return path
        except OSError:  # a file being replaced meanwhile is not the one
            continue
    return None


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
