"""Versioned project datasets: every upload, draft and fix is an immutable version named by its content hash.

Every add / edit / delete is appended to a journal (flushed and fsynced) before it counts, so a crash
loses nothing; each version file is written atomically and never rewritten afterwards. A dataset's
version name is the one hash scheme of the code base (`dataset_hash`): training records it, evaluation
checks it, and the check report is cached by it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.dataset.model import DatasetReport, Example
from tools.dataset.parsed import rows_of
from tools.dataset.sniff import DATASET_SUFFIXES
from tools.dataset.writers import dumps_jsonl
from tools.db import connect
from tools.errors import UsageError
from tools.fileio import append_jsonl, atomic_write_json, atomic_write_text, copy_private
from tools.project import project_dir, slugify
from tools.settings import get_settings

if TYPE_CHECKING:
    from tools.dataset.fix import FixResult

HASH_CHARS = 12
VALIDATION_SEPARATOR = b"\0validation\0"


@dataclass(frozen=True)
class Version:
    """One saved version of a project dataset."""

    version: str
    """Content hash of the version's files (`dataset_hash`): the name training records and evaluation checks."""
    examples: int
    created: str
    note: str
    path: Path
    """The training file; `mtw train --data` reads it (a validation file, if any, sits next to it)."""
    source: str = "draft"
    """Where it came from: "draft", "upload:<original file name>" or "fix:<version it cleaned>"."""


def content_hash(data: bytes) -> str:
    """The name of a version: the first 12 hex digits of the SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()[:HASH_CHARS]


def dataset_hash(path: str | Path) -> str:
    """The version name of a dataset file as training reads it: its bytes, then its validation file's, if any.

    One file hashes exactly like `content_hash` of its bytes, so a saved version's file is named by its own hash.
    """
    from tools.dataset.checks import validation_path_for

    digest = hashlib.sha256()
    _feed(digest, Path(path))
    validation = validation_path_for(path)
    if validation is not None:
        digest.update(VALIDATION_SEPARATOR)
        _feed(digest, validation)
    return digest.hexdigest()[:HASH_CHARS]


def _feed(digest: Any, path: Path) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)


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
        self._current: str | None = None
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
        """Every version (saved drafts, uploads, fixes), oldest first."""
        return list(self._versions)

    def current(self) -> Version | None:
        """The version the project works with now: the latest saved, uploaded, fixed or restored one."""
        return next((v for v in self._versions if v.version == self._current), None)

    def version(self, version: str) -> Version:
        """One version by its hash (a prefix is enough)."""
        matches = [v for v in self._versions if v.version.startswith(version)] if version else []
        if len(matches) != 1:
            known = ", ".join(v.version for v in self._versions) or "none yet"
            raise UsageError(f"No single dataset version '{version}' in project '{self.project}'.",
                             f"Use one of: {known}.")
        return matches[0]

    def report(self, version: str | None = None, *, model: str | None = None, context: int | None = None
               ) -> DatasetReport:
        """The check report of a version (the current one by default), cached by its hash."""
        chosen = self.version(version) if version else self.current()
        if chosen is None:
            raise UsageError(f"Project '{self.project}' has no dataset version yet.",
                             "Upload a file of examples, or draft some and save them.")
        return checked(chosen.path, model=model, context=context)

    def load(self, version: str) -> list[Example]:
        """The examples of a saved version (a prefix of its hash is enough)."""
        return rows_of(self.version(version).path)

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
        version = content_hash(text.encode("utf-8"))
        path = self.versions_dir / f"{version}.jsonl"
        if not path.exists():
            atomic_write_text(path, text)
        entry = {"op": "save", "version": version, "examples": len(self._rows), "note": note, "ts": _now()}
        self._log(entry)
        saved = self._apply_save(entry)
        self._record(saved)
        return saved

    def import_file(self, path: str | Path, note: str = "", *, name: str | None = None) -> Version:
        """Take an uploaded file in as a new version, byte for byte (a same-named upload never replaces another).

        `name` is the file's name as the user knows it (an upload's temporary path says nothing).
        """
        src = Path(path)
        shown = name or src.name
        suffix = Path(shown).suffix.lower()
        if not src.is_file():
            raise UsageError(f"No file at {src} to take in.", "Upload the file again.")
        if suffix not in DATASET_SUFFIXES:
            raise UsageError(f"'{shown}' is not a dataset file this tool reads.",
                             f"Upload one of: {', '.join(DATASET_SUFFIXES)}.")
        staged = self._staging() / f"upload{suffix}"
        copy_private(src, staged)
        return self._add_version(staged, source=f"upload:{shown}", note=note or f"uploaded {shown}")

    def fix(self, version: str | None = None, note: str = "", **options: Any) -> tuple[Version, FixResult]:
        """Clean a version (the current one by default) into a new version; the version it cleaned is kept.

        `options` go to `fix_dataset` (model, context, validation_share, drop_near_duplicates, seed).
        """
        from tools.dataset.fix import fix_dataset

        source = self.version(version) if version else self.current()
        if source is None:
            raise UsageError(f"Project '{self.project}' has no dataset version to clean.",
                             "Upload a file of examples first.")
        staged = self._staging() / "clean.jsonl"
        try:
            result = fix_dataset(source.path, staged, **options)
        except BaseException:
            # nothing half-made is left behind when the data cannot be cleaned
            shutil.rmtree(staged.parent, ignore_errors=True)
            raise
        fixed = self._add_version(staged, source=f"fix:{source.version}", note=note or f"cleaned {source.version}")
        val = fixed.path.with_name(f"{fixed.version}.validation.jsonl")
        return fixed, replace(result, train_path=fixed.path, validation_path=val if val.is_file() else None)

    def restore(self, version: str) -> list[Example]:
        """Make a saved version the working copy again (the journal keeps everything since, too)."""
        path = self.version(version).path
        rows = rows_of(path)
        ids = [uuid.uuid4().hex[:10] for _ in rows]
        name = self.version(version).version
        self._log({"op": "restore", "version": name, "ids": ids})
        self._rows = dict(zip(ids, (_clean(r) for r in rows), strict=True))
        self.head = name
        self._current = name
        self.dirty = False
        return self.examples()

    # ------------------------------------------------------------ internals

    def _staging(self) -> Path:
        """A fresh private folder for a file on its way in (renamed into versions/ once named)."""
        staging = self.dir / "staging" / uuid.uuid4().hex[:10]
        staging.mkdir(parents=True)
        return staging

    def _add_version(self, staged: Path, *, source: str, note: str) -> Version:
        """Name a staged file (and its validation file) by their hash, move them in, check and journal them."""
        from tools.dataset.checks import validation_path_for

        version = dataset_hash(staged)
        dest = self.versions_dir / f"{version}{staged.suffix}"
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            staged_val = validation_path_for(staged)
            if staged_val is not None:
                # the validation file first: a version's training file never appears without it
                staged_val.replace(dest.with_name(f"{version}.validation{staged_val.suffix}"))
            staged.replace(dest)
        shutil.rmtree(staged.parent, ignore_errors=True)
        report = checked(dest)
        entry = {"op": "version", "version": version, "file": dest.name, "examples": report.examples,
                 "note": note, "source": source, "ts": _now()}
        self._log(entry)
        added = self._apply_save(entry, working_copy=False)
        self._record(added)
        return added

    def _log(self, entry: dict[str, Any]) -> None:
        append_jsonl(self.journal, {**entry, "ts": entry.get("ts", _now())})

    def _apply_save(self, entry: dict[str, Any], *, working_copy: bool = True) -> Version:
        saved = Version(version=entry["version"], examples=entry["examples"], created=entry["ts"],
                        note=entry.get("note", ""),
                        path=self.versions_dir / entry.get("file", f"{entry['version']}.jsonl"),
                        source=entry.get("source", "draft"))
        known = next((v for v in self._versions if v.version == saved.version), None)
        if known is None:
            self._versions.append(saved)
        self._current = saved.version
        if working_copy:
            # a saved draft is what the working copy now is; an upload or fix leaves the drafts as they are
            self.head = saved.version
            self.dirty = False
        return known or saved

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
        elif op == "version":
            self._apply_save(entry, working_copy=False)
        elif op == "restore":
            known = next((v for v in self._versions if v.version == entry["version"]), None)
            path = known.path if known else self.versions_dir / f"{entry['version']}.jsonl"
            rows = rows_of(path) if path.is_file() else []
            self._rows = dict(zip(entry["ids"], (_clean(r) for r in rows), strict=False))
            self.head = entry["version"]
            self._current = entry["version"]
            self.dirty = False

    def _record(self, saved: Version) -> None:
        with connect() as db:
            db.execute(VERSIONS_TABLE)
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


VERSIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS dataset_versions (project TEXT NOT NULL, version TEXT NOT NULL, "
    "examples INTEGER NOT NULL, note TEXT, created TEXT NOT NULL, path TEXT NOT NULL, "
    "PRIMARY KEY (project, version))"
)


def find_version(version: str) -> Path | None:
    """The file of a dataset version kept in any project of the workspace (None when none holds it)."""
    with connect() as db:
        db.execute(VERSIONS_TABLE)
        rows = db.execute("SELECT path FROM dataset_versions WHERE version = ?", (version,)).fetchall()
    return next((Path(r["path"]) for r in rows if Path(r["path"]).is_file()), None)


# ---------------------------------------------------------------- the check report, cached by version


@lru_cache(maxsize=1)
def _checks_fingerprint() -> str:
    """The checks' own code: a report made by other checks is not reused."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:HASH_CHARS]


def report_cache_path(path: str | Path, *, model: str | None, context: int | None, format: str | None) -> Path:
    """Where the report of this dataset version, checked with these settings, is kept in MTW_HOME."""
    key = json.dumps([dataset_hash(path), str(Path(path).resolve()), model, context, format, _checks_fingerprint()])
    return get_settings().home / "cache" / "reports" / f"{content_hash(key.encode('utf-8'))}.json"


def checked(path: str | Path, *, model: str | None = None, context: int | None = None,
            format: str | None = None) -> DatasetReport:
    """`mtw check`'s report of a file, made once per dataset version and settings and then read from the cache."""
    from tools.dataset.checks import check_file

    cache = report_cache_path(path, model=model, context=context, format=format)
    try:
        return DatasetReport.model_validate_json(cache.read_bytes())
    except (OSError, ValueError):
        pass  # not made yet, or cut short: check again
    # the check parses the file once per process (tools/dataset/parsed.py): whoever reads this version next does not
    report = check_file(path, model=model, context=context, format=format)
    with contextlib.suppress(OSError):  # a read-only or full MTW_HOME: checked again next time, nothing lost
        atomic_write_json(cache, report.model_dump(mode="json"))
    return report
