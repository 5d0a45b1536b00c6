"""What `mtw download` would fetch: the repo's files, their sizes and what is already here (the plan the chat and
the command line show before anything is downloaded)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RepoFile:
    """One file to fetch."""

    name: str
    """Path inside the repo (always top level here)."""
    size: int
    """Bytes."""
    cached: bool
    """Already in the local cache from an earlier (perhaps interrupted) download."""
    blob: str = ""
    """Its name in the cache's blobs/ folder: its sha256 when it lives in LFS, its git hash otherwise."""
    partial_bytes: int = 0
    """Bytes of it a stopped download left behind (its .partial file, or all of it when only the snapshot's link to
    its blob is missing), counted as already here."""


@dataclass
class DownloadPlan:
    """What `download` would fetch, from where, to where."""

    model: str
    """The name the user gave (catalog key, Ollama-style name or Hugging Face id)."""
    repo_id: str
    """The Hugging Face repo."""
    revision: str
    """The commit the files come from."""
    files: list[RepoFile]
    """The selected files (see select_files)."""
    cache_dir: Path
    """The Hugging Face cache they go to."""
    gated: bool = False
    """The repo's owner asks each user to accept a licence before downloading."""
    folder: Path | None = None
    """The local snapshot folder, once complete."""
    skipped: list[str] = field(default_factory=list)
    """Files in the repo that are not fetched."""

    @property
    def total_bytes(self) -> int:
        """Size of every selected file."""
        return sum(f.size for f in self.files)

    @property
    def missing_bytes(self) -> int:
        """Bytes still to fetch (what partial files hold is not fetched again)."""
        return sum(f.size - f.partial_bytes for f in self.files if not f.cached)

    @property
    def complete(self) -> bool:
        """Everything is on this machine already."""
        return self.folder is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the shape `mtw download --json` prints)."""
        return {"model": self.model, "repo_id": self.repo_id, "revision": self.revision,
                "cache_dir": str(self.cache_dir), "folder": str(self.folder) if self.folder else None,
                "gated": self.gated, "total_bytes": self.total_bytes, "missing_bytes": self.missing_bytes,
                "complete": self.complete,
                "files": [{"name": f.name, "size": f.size, "cached": f.cached, "partial_bytes": f.partial_bytes}
                          for f in self.files], "skipped": self.skipped}

