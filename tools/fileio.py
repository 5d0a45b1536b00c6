"""Atomic, owner-only writes: a crash mid-write never leaves a half-written file, and nobody else can read it."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def _atomic(path: Path, *, binary: bool) -> Iterator[IO[Any]]:
    """A temp file in the same folder that becomes `path` (fsync, then rename) when the block ends, or vanishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder, fsync, then rename."""
    with _atomic(path, binary=True) as f:
        f.write(data)


def atomic_writer(path: Path) -> Any:
    """A UTF-8 text file to write bit by bit; it appears at `path` whole when the block ends, or not at all."""
    return _atomic(path, binary=False)


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write JSON (indented, UTF-8) atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def append_jsonl(path: Path, obj: Any) -> None:
    """Append one JSON line and flush it to disk, so a reader tailing the file sees it at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", encoding="utf-8") as f:
        f.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


PRIVATE_UMASK = 0o077
"""Folders 0700 and files 0600 from the moment they are made, by us and by every library in the process."""


def private_process() -> None:
    """Everything this process (and each process it starts) creates is readable by its owner only."""
    os.umask(PRIVATE_UMASK)


def private_file(path: Path) -> Path:
    """Create PATH empty and owner-only if it does not exist (a database before SQLite opens it); returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    return path


def private_home(home: Path) -> None:
    """MTW_HOME owner-only: made 0700, or closed to others when an older version left it open (nothing inside
    can then be reached by another account, whatever its own mode); its databases 0600.

    Only a folder that is ours is changed: one of the user's own holding a workspace database, never a shared one
    such as /tmp (sticky) or someone else's.
    """
    import stat

    home = Path(home)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = home.stat()
    ours = info.st_uid == os.getuid() and not info.st_mode & stat.S_ISVTX and any(
        (home / name).is_file() for name in ("mtw.db", "chat.db", "checkpoints.db", "ui_token"))
    if not ours:
        return
    for path in [home, *home.glob("*.db"), *home.glob("*.db-wal"), *home.glob("*.db-shm")]:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(mode & 0o700)


def copy_private(src: Path, dest: Path) -> None:
    """Copy a file's bytes to DEST as a new owner-only file (shutil.copy would carry over the source's mode)."""
    import shutil

    with open(src, "rb") as f, _atomic(dest, binary=True) as out:
        shutil.copyfileobj(f, out, 1 << 20)
