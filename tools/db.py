"""The workspace database: one SQLite file in MTW_HOME, its schema brought up to date by numbered migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from tools.errors import WorkspaceError
from tools.fileio import private_file
from tools.settings import get_settings

Migration = Sequence[str]
"""One schema step: SQL statements applied together, in one transaction."""

WORKSPACE: list[Migration] = [
    # 1: the tables as they were before migrations existed (IF NOT EXISTS: an older MTW_HOME keeps its rows)
    (
        "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, project TEXT, run_dir TEXT NOT NULL UNIQUE, "
        "dataset_version TEXT, config TEXT, status TEXT NOT NULL, pid INTEGER, started TEXT, ended TEXT, "
        "metrics TEXT, message TEXT)",
        "CREATE TABLE IF NOT EXISTS projects (slug TEXT PRIMARY KEY, name TEXT NOT NULL, spec_path TEXT NOT NULL, "
        "thread_id TEXT, created TEXT NOT NULL, updated TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, stem TEXT NOT NULL, version INTEGER NOT NULL, "
        "base_model TEXT NOT NULL, route TEXT NOT NULL, dataset_hash TEXT NOT NULL, run_id TEXT NOT NULL, "
        "run_dir TEXT NOT NULL, eval_scores TEXT NOT NULL, ollama_tag TEXT NOT NULL, verified INTEGER NOT NULL, "
        "promoted INTEGER NOT NULL, created TEXT NOT NULL, notes TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS dataset_versions (project TEXT NOT NULL, version TEXT NOT NULL, "
        "examples INTEGER NOT NULL, note TEXT, created TEXT NOT NULL, path TEXT NOT NULL, "
        "PRIMARY KEY (project, version))",
    ),
    # 2: how a registered model was trained: sft, or a preference round (dpo / kto) and on how many judgements
    (
        "ALTER TABLE models ADD COLUMN method TEXT NOT NULL DEFAULT 'sft'",
        "ALTER TABLE models ADD COLUMN judgements INTEGER NOT NULL DEFAULT 0",
    ),
]
"""The workspace schema, oldest first: append a step to change it, never edit one that has shipped."""

_migrated: set[Path] = set()


def schema_version(conn: sqlite3.Connection) -> int:
    """The number of migrations applied to this database (0 for a new one)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Apply the migrations this database has not had yet, each in its own transaction; returns the version.

    BEGIN IMMEDIATE takes the write lock before reading the version, so two processes opening the same new
    MTW_HOME at once apply each step exactly once.
    """
    version = schema_version(conn)
    while version < len(migrations):
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(conn)
            if version < len(migrations):
                for statement in migrations[version]:
                    conn.execute(statement)
                version += 1
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version


def connect(path: Path | None = None) -> sqlite3.Connection:
    """Open the workspace database (WAL, rows as dicts-by-name, schema up to date), creating MTW_HOME if needed."""
    path = path or get_settings().db_path
    try:
        conn = sqlite3.connect(private_file(path), timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        if path not in _migrated:
            migrate(conn, WORKSPACE)
            _migrated.add(path)
    except (OSError, sqlite3.OperationalError) as exc:
        raise WorkspaceError(
            f"Cannot open the workspace database at {path}: {exc}.",
            fix="Set MTW_HOME to a folder you can write to, e.g. `export MTW_HOME=~/mtw-work`.",
        ) from exc
    return conn
