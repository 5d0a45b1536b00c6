"""Where the Hugging Face cache keeps a model on this machine: read from disk only, never the network."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
"""A Hugging Face id: owner/name."""


def hub_cache() -> Path:
    """The Hugging Face cache folder, read now, in huggingface_hub's order of precedence."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    home = os.environ.get("HF_HOME") or os.path.join(xdg, "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def storage_dir(repo_id: str, cache: Path) -> Path:
    """The folder a repo's files, refs and snapshots live in."""
    return cache / ("models--" + repo_id.replace("/", "--"))


def local_snapshot(repo_id: str, cache: Path | None = None) -> Path | None:
    """The cached snapshot that the repo's main branch points at, if there is one (no network)."""
    if not REPO_ID.fullmatch(repo_id):
        return None
    storage = storage_dir(repo_id, cache or hub_cache())
    try:
        commit = (storage / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    folder = storage / "snapshots" / commit
    return folder if commit and folder.is_dir() else None
