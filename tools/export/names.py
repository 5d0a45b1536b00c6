"""Model names as Ollama takes them, checked before anything is written or any command is printed."""

from __future__ import annotations

import re

from tools.errors import UsageError

MAX_NAME = 80
"""Ollama's longest model name (its `name` part; ours carry no namespace or tag)."""
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
EXAMPLE = "PM-General-v1"


def name_problem(name: str) -> str | None:
    """Why NAME cannot be a model in Ollama, in one sentence; None when it can."""
    shown = name if len(name) <= 40 else name[:40] + "…"
    if not name.strip():
        return "A model in Ollama needs a name."
    if len(name) > MAX_NAME:
        return f"'{shown}' is {len(name)} characters long; Ollama takes model names of at most {MAX_NAME}."
    if not _NAME.fullmatch(name) or ".." in name:
        return (f"'{shown}' cannot be a model name in Ollama: use letters, digits, '-', '_' and '.' (no spaces, "
                f"slashes or other signs), starting with a letter or digit, e.g. {EXAMPLE}.")
    return None


def check_name(name: str) -> str:
    """NAME when Ollama takes it; otherwise a UsageError that says why and gives an example."""
    if why := name_problem(name):
        raise UsageError(why, f"Choose another name, e.g. --name {EXAMPLE}.")
    return name
