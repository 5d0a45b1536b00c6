"""The workspace database: one SQLite file in MTW_HOME; each module creates the tables it owns."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tools.errors import WorkspaceError
from tools.settings import get_settings


def connect(path: Path | None = None) -> sqlite3.Connection:
    """Open the workspace database (WAL, rows as dicts-by-name), creating MTW_HOME if needed."""
    path = path or get_settings().db_path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    except (OSError, sqlite3.OperationalError) as exc:
        raise WorkspaceError(
            f"Cannot open the workspace database at {path}: {exc}.",
            fix="Set MTW_HOME to a folder you can write to, e.g. `export MTW_HOME=~/mtw-work`.",
        ) from exc
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn
