"""Versioned project datasets: edit examples, save versions named by content hash, restore any of them.

Every add / edit / delete is appended to a journal (flushed and fsynced) before it counts, so a crash
loses nothing; each save writes the version file atomically and is never rewritten afterwards.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.dataset.model import Example
from tools.dataset.readers import dumps_jsonl, read_dataset
from tools.db import connect
from tools.errors import UsageError
from tools.fileio import append_jsonl, atomic_write_text
from tools.project import project_dir, slugify

HASH_CHARS = 12


@dataclass(frozen=True)
class Version:
    """One saved version of a project dataset."""

    version: str
    """Content hash of the version file (first 12 hex digits of its SHA-256)."""
    examples: int
    created: str
    note: str
    path: Path


def content_hash(text: str) -> str:
    """The name of a version: the start of the SHA-256 of its canonical JSONL text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_CHARS]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class DatasetStore:
    """A project's dataset being authored: a working copy rebuilt from the journal, and its saved versions."""

    def __init__(self, project: str, root: Path | None = None) -> None:
        self.project = slugify(project)
        self.dir = root if root is not None else project_dir(self.project) / "dataset"
        self.versions_dir = self.dir / "versions"
        self.journal = self.dir / "journal.jsonl"
        self._rows: dict[str, Example] = {}
        self._versions: list[Version] = []
        self.head: str | None = None
        """The version the working copy was last saved as or restored from."""
        self.dirty = False
        """True when there are edits since the last save or restore."""
        self._replay()

    # ------------------------------------------------------------ reading state

    def examples(self) -> list[Example]:
        """The working copy, in order."""
        return list(self._rows.values())

    def items(self) -> list[tuple[str, Example]]:
        """(id, example) pairs of the working copy, in order; ids are what edit / delete take."""
        return list(self._rows.items())

    def get(self, example_id: str) -> Example:
        """One example of the working copy by id."""
        if example_id not in self._rows:
            raise UsageError(f"No example with id '{example_id}' in project '{self.project}'.",
                             "List the examples to see their ids; it may have been deleted.")
        return self._rows[example_id]

    def versions(self) -> list[Version]:
        """Saved versions, oldest first."""
        return list(self._versions)

    def load(self, version: str) -> list[Example]:
        """The examples of a saved version (a prefix of its hash is enough)."""
        return read_dataset(self._version_path(version)).examples

    # ------------------------------------------------------------ edits (journaled first)

    def add(self, example: Example) -> str:
        """Add an example to the working copy; returns its id."""
        example_id = uuid.uuid4().hex[:10]
        self._log({"op": "add", "id": example_id, "example": _dump(example)})
        self._rows[example_id] = example
        self.dirty = True
        return example_id

    def edit(self, example_id: str, example: Example) -> None:
        """Replace an example of the working copy."""
        self.get(example_id)
        self._log({"op": "edit", "id": example_id, "example": _dump(example)})
        self._rows[example_id] = example
        self.dirty = True

    def delete(self, example_id: str) -> None:
        """Remove an example from the working copy."""
        self.get(example_id)
        self._log({"op": "delete", "id": example_id})
        del self._rows[example_id]
        self.dirty = True

    def save(self, note: str = "") -> Version:
        """Save the working copy as a version named by its content hash (saving unchanged content reuses it)."""
        text = dumps_jsonl(self._rows.values())
        version = content_hash(text)
        path = self.versions_dir / f"{version}.jsonl"
        if not path.exists():
            atomic_write_text(path, text)
        entry = {"op": "save", "version": version, "examples": len(self._rows), "note": note, "ts": _now()}
        self._log(entry)
        saved = self._apply_save(entry)
        self._record(saved)
        return saved

    def restore(self, version: str) -> list[Example]:
        """Make a saved version the working copy again (the journal keeps everything since, too)."""
        path = self._version_path(version)
        rows = read_dataset(path).examples
        ids = [uuid.uuid4().hex[:10] for _ in rows]
        self._log({"op": "restore", "version": path.stem, "ids": ids})
        self._rows = dict(zip(ids, (_clean(r) for r in rows), strict=True))
        self.head = path.stem
        self.dirty = False
        return self.examples()

    # ------------------------------------------------------------ internals

    def _log(self, entry: dict[str, Any]) -> None:
        append_jsonl(self.journal, {**entry, "ts": entry.get("ts", _now())})

    def _version_path(self, version: str) -> Path:
        matches = sorted(self.versions_dir.glob(f"{version}*.jsonl")) if version else []
        if len(matches) != 1:
            known = ", ".join(v.version for v in self._versions) or "none yet"
            raise UsageError(f"No single saved version '{version}' in project '{self.project}'.",
                             f"Use one of: {known}.")
        return matches[0]

    def _apply_save(self, entry: dict[str, Any]) -> Version:
        saved = Version(version=entry["version"], examples=entry["examples"], created=entry["ts"],
                        note=entry.get("note", ""), path=self.versions_dir / f"{entry['version']}.jsonl")
        if all(v.version != saved.version for v in self._versions):
            self._versions.append(saved)
        self.head = saved.version
        self.dirty = False
        return saved

    def _replay(self) -> None:
        if not self.journal.is_file():
            return
        with open(self.journal, encoding="utf-8") as f:
            for raw in f:
                try:
                    entry = json.loads(raw)
                except json.JSONDecodeError:
                    # a line cut off by a crash mid-append: everything before it is intact
                    continue
                self._replay_one(entry)

    def _replay_one(self, entry: dict[str, Any]) -> None:
        op = entry.get("op")
        if op in ("add", "edit"):
            self._rows[entry["id"]] = Example.model_validate(entry["example"])
            self.dirty = True
        elif op == "delete":
            self._rows.pop(entry["id"], None)
            self.dirty = True
        elif op == "save":
            self._apply_save(entry)
        elif op == "restore":
            path = self.versions_dir / f"{entry['version']}.jsonl"
            rows = read_dataset(path).examples if path.is_file() else []
            self._rows = dict(zip(entry["ids"], (_clean(r) for r in rows), strict=False))
            self.head = entry["version"]
            self.dirty = False

    def _record(self, saved: Version) -> None:
        with connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS dataset_versions (project TEXT NOT NULL, version TEXT NOT NULL, "
                "examples INTEGER NOT NULL, note TEXT, created TEXT NOT NULL, path TEXT NOT NULL, "
                "PRIMARY KEY (project, version))"
            )
            db.execute(
                "INSERT OR IGNORE INTO dataset_versions (project, version, examples, note, created, path) "
                "VALUES (?,?,?,?,?,?)",
                (self.project, saved.version, saved.examples, saved.note, saved.created, str(saved.path)),
            )


def _dump(example: Example) -> dict[str, Any]:
    return example.model_dump(exclude={"line"}, exclude_none=True)


def _clean(example: Example) -> Example:
    """A row as kept in the working copy: its file line number means nothing there."""
    return example.model_copy(update={"line": None})


def file_version(path: str | Path) -> str:
    """The content hash of any dataset file, as its canonical JSONL (so a run can name the data it used)."""
    return content_hash(dumps_jsonl(read_dataset(path).examples))
