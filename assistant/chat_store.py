"""Chat history on SQLite in MTW_HOME for Chainlit's SQLAlchemy data layer (migrated schema, stored files)."""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path

from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.data.storage_clients.base import BaseStorageClient

from tools.db import Migration
from tools.settings import get_settings

# chainlit's SQLAlchemy layer expects these tables; SQLite also needs the newer step columns
SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    "id" TEXT PRIMARY KEY, "identifier" TEXT NOT NULL UNIQUE, "metadata" TEXT NOT NULL, "createdAt" TEXT);
CREATE TABLE IF NOT EXISTS threads (
    "id" TEXT PRIMARY KEY, "createdAt" TEXT, "name" TEXT, "userId" TEXT, "userIdentifier" TEXT,
    "tags" TEXT, "metadata" TEXT, FOREIGN KEY ("userId") REFERENCES users("id") ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS steps (
    "id" TEXT PRIMARY KEY, "name" TEXT NOT NULL, "type" TEXT NOT NULL, "threadId" TEXT NOT NULL,
    "parentId" TEXT, "streaming" BOOLEAN NOT NULL, "waitForAnswer" BOOLEAN, "isError" BOOLEAN,
    "metadata" TEXT, "tags" TEXT, "input" TEXT, "output" TEXT, "createdAt" TEXT, "command" TEXT,
    "start" TEXT, "end" TEXT, "generation" TEXT, "showInput" TEXT, "language" TEXT, "indent" INT,
    "defaultOpen" BOOLEAN, "autoCollapse" BOOLEAN, "modes" TEXT, "icon" TEXT,
    FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS elements (
    "id" TEXT PRIMARY KEY, "threadId" TEXT, "type" TEXT, "url" TEXT, "chainlitKey" TEXT, "name" TEXT NOT NULL,
    "display" TEXT, "objectKey" TEXT, "size" TEXT, "page" INT, "language" TEXT, "forId" TEXT, "mime" TEXT,
    "props" TEXT, "autoPlay" BOOLEAN, "playerConfig" TEXT, "path" TEXT,
    FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS feedbacks (
    "id" TEXT PRIMARY KEY, "forId" TEXT NOT NULL, "threadId" TEXT NOT NULL, "value" INT NOT NULL, "comment" TEXT,
    FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE);
"""


def chat_db_path() -> Path:
    """The chat history database (separate from the workspace db: chainlit owns its schema)."""
    return get_settings().home / "chat.db"


def checkpoint_db_path() -> Path:
    """The LangGraph checkpoints: the wizard's state for every conversation."""
    return get_settings().home / "checkpoints.db"


MIGRATIONS: list[Migration] = [
    # 1: chainlit 2.x's tables (IF NOT EXISTS: chat history from before migrations is kept)
    tuple(s.strip() for s in SCHEMA.split(";") if s.strip()),
]
"""The chat schema, oldest first: a chainlit upgrade that changes its tables gets a new step here."""


def ensure_chat_db() -> str:
    """Bring the chat database's schema up to date; returns the SQLAlchemy URL for chainlit."""
    from tools.db import migrate
    from tools.fileio import private_file

    path = private_file(chat_db_path())
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        migrate(db, MIGRATIONS)
    finally:
        db.close()
    return f"sqlite+aiosqlite:///{path}"


def auth_secret() -> str:
    """A per-install secret that signs the local session cookie (kept in MTW_HOME, owner-only)."""
    path = get_settings().home / "auth_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # owner-only from the first byte; O_EXCL: two first starts at once agree on one secret
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


FILES_ROUTE = "/mtw-files"
"""Where the chat server hands out the files of stored conversations (charts, uploads)."""


def files_dir() -> Path:
    """The files attached to chat messages (charts, uploads), so a reopened conversation shows them again."""
    return get_settings().home / "chat-files"


def stored_file(object_key: str) -> Path | None:
    """The file behind an object key, or None when the key would leave the files folder or names nothing."""
    root = files_dir().resolve()
    if "\x00" in object_key:
        return None
    path = (root / object_key).resolve()
    return path if path.is_relative_to(root) and path != root and path.is_file() else None


def safe_key(object_key: str) -> str:
    """`<user id>/<element id>/<name>` with each part a safe base name: a name like `..` or `../../x` can neither
    replace the user's folder nor leave it."""
    from assistant.uploads import safe_name

    return "/".join(safe_name(part) for part in object_key.split("/", 2))


class ChatHistory(SQLAlchemyDataLayer):
    """Chainlit's SQL data layer, storing a conversation's files under its user's id also for the first message
    (chainlit files it under `unknown/` when the thread row does not exist yet, and the file server then says 404)."""

    async def _get_user_id_by_thread(self, thread_id: str) -> str | None:
        found = await super()._get_user_id_by_thread(thread_id)
        if found:
            return found
        from chainlit.context import context

        try:
            user = context.session.user
        except Exception:  # outside a chat (no session): nobody to file it under
            return None
        persisted = await self.get_user(user.identifier) if user else None
        return persisted.id if persisted else None


class LocalFiles(BaseStorageClient):
    """Chainlit's storage client over a folder in MTW_HOME (nothing leaves the machine).

    Keys are `<user id>/<element id>/<name>`; the element id is a random UUID, and the server hands a file only to
    the user whose id starts its key.
    """

    async def upload_file(self, object_key: str, data: bytes | str, mime: str = "application/octet-stream",
                          overwrite: bool = True, content_disposition: str | None = None) -> dict[str, str]:
        """Write the file atomically; returns its key and the URL the chat loads it from."""
        from urllib.parse import quote

        from tools.fileio import atomic_write_bytes

        object_key = safe_key(object_key)
        root = files_dir().resolve()
        path = (root / object_key).resolve()
        if not path.is_relative_to(root) or path == root:
            raise ValueError(f"object key {object_key!r} leaves {root}")
        if path.exists() and not overwrite:
            return {"object_key": object_key, "url": f"{FILES_ROUTE}/{quote(object_key)}"}
        atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)
        return {"object_key": object_key, "url": f"{FILES_ROUTE}/{quote(object_key)}"}

    async def delete_file(self, object_key: str) -> bool:
        """Remove a stored file (when its conversation is deleted)."""
        path = stored_file(object_key)
        if path is None:
            return False
        path.unlink(missing_ok=True)
        return True

    async def get_read_url(self, object_key: str) -> str:
        """The URL a reopened conversation loads the file from."""
        from urllib.parse import quote

        return f"{FILES_ROUTE}/{quote(object_key)}"

    async def close(self) -> None:
        """Nothing to release."""
