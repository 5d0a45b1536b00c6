"""Password sign-in: salted scrypt hashes, sessions that can be ended, and a limit on guessing.

A session carries a stamp of its user's entry in MTW_HOME/ui_users.json (their hash and a random session id).
Every request checks the stamp against the file, so signing out (a new session id), a new password (a new hash) or
removing the user ends their sessions at once — also across a restart, since nothing is kept in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.errors import UsageError
from tools.fileio import atomic_write_bytes

USERS_FILE = "ui_users.json"
MIN_PASSWORD = 8
"""Shorter passwords are refused: a 1-character one falls to a handful of guesses."""
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
# an unknown user's guess is hashed too, against this salt, so a wrong name costs what a wrong password does
_NOBODY = {"salt": "00" * 16, "scrypt": "", "session": ""}


def _hash_password(password: str, salt: bytes) -> str:
    return hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT).hex()


def _users(home: Path) -> dict[str, Any]:
    path = home / USERS_FILE
    users: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    return users


def _save(home: Path, users: dict[str, Any]) -> None:
    atomic_write_bytes(home / USERS_FILE, json.dumps(users, indent=2).encode())  # a temp file made 0600


def password_problem(password: str) -> str | None:
    """Why PASSWORD is too weak to keep, in a sentence; None when it will do."""
    if len(password) < MIN_PASSWORD:
        return (f"A password needs at least {MIN_PASSWORD} characters (this one has {len(password)}): a short one "
                "is guessed in minutes.")
    return None


def set_password(home: Path, user: str, password: str) -> None:
    """Store (or replace) USER's password, salted and hashed with scrypt, in MTW_HOME/ui_users.json (owner-only).

    A new password ends the sessions signed in with the old one.
    """
    if why := password_problem(password):
        raise UsageError(why, "Choose a longer one: a few unrelated words, e.g. 'paper lamp river stone'.")
    users = _users(home)
    salt = secrets.token_bytes(16)
    users[user] = {"salt": salt.hex(), "scrypt": _hash_password(password, salt), "session": secrets.token_hex(16)}
    _save(home, users)


def has_passwords(home: Path) -> bool:
    """True once at least one user has a password."""
    return bool(_users(home))


def _stamp(entry: dict[str, Any]) -> str:
    return hashlib.sha256(f"{entry['scrypt']}:{entry.get('session', '')}".encode()).hexdigest()[:32]


def sign_in(home: Path, user: str, password: str) -> str | None:
    """The session stamp when PASSWORD is USER's, else None — with the same work for a user who does not exist."""
    entry = _users(home).get(user)
    digest = _hash_password(password, bytes.fromhex((entry or _NOBODY)["salt"]))
    if entry is None or not hmac.compare_digest(digest, entry["scrypt"]):
        return None
    return _stamp(entry)


def check_password(home: Path, user: str, password: str) -> bool:
    """True when USER exists and PASSWORD is theirs (constant-time compare)."""
    return sign_in(home, user, password) is not None


def session_valid(home: Path, user: str, stamp: str) -> bool:
    """True while the session stamped STAMP still belongs to USER: not signed out, same password, still a user."""
    entry = _users(home).get(user)
    return entry is not None and hmac.compare_digest(_stamp(entry), stamp or "")


def end_sessions(home: Path, user: str) -> None:
    """Sign USER out everywhere: every session stamped before now stops working."""
    users = _users(home)
    if user in users:
        users[user]["session"] = secrets.token_hex(16)
        _save(home, users)


@dataclass
class Throttle:
    """Failed sign-ins counted per user name and per client address over a sliding window."""

    per_user: int = 5
    """Failed tries one user name gets per window."""
    per_client: int = 20
    """Failed tries one address gets per window, whatever names it tries."""
    window_s: float = 300.0
    """How long a failed try counts."""
    clock: Callable[[], float] = time.monotonic
    """The time source (a test passes its own)."""
    _failed: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, key: str) -> deque[float]:
        seen = self._failed.get(key, deque())
        while seen and seen[0] <= self.clock() - self.window_s:
            seen.popleft()
        if not seen:
            self._failed.pop(key, None)
        return seen

    def wait_s(self, user: str, client: str) -> int:
        """Seconds until USER from CLIENT may try again; 0 when they may now."""
        wait = 0.0
        for key, limit in ((f"user:{user}", self.per_user), (f"client:{client}", self.per_client)):
            seen = self._recent(key)
            if len(seen) >= limit:
                wait = max(wait, seen[len(seen) - limit] + self.window_s - self.clock())
        return math.ceil(wait)

    def failed(self, user: str, client: str) -> None:
        """Count one wrong password (or unknown user)."""
        for key in (f"user:{user}", f"client:{client}"):
            self._failed.setdefault(key, deque()).append(self.clock())
            self._recent(key)

    def succeeded(self, user: str) -> None:
        """The right password: the user's own count starts again (the address's does not)."""
        self._failed.pop(f"user:{user}", None)


def too_many(wait_s: int) -> str:
    """The sentence for a throttled sign-in."""
    when = f"{math.ceil(wait_s / 60)} minute(s)" if wait_s >= 60 else f"{wait_s} second(s)"
    return (f"Too many wrong passwords for this user or from this computer: try again in {when}, or ask the "
            "person running the wizard to set a new password with `mtw ui --set-password --user NAME`.")
