"""Small builders for dataset tests: realistic PM rows and files written in any format."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tools.dataset.model import Example

TOPICS = [
    "password reset", "CSV export of invoices", "dark mode", "SSO with Okta", "bulk user import",
    "usage-based billing", "audit log", "mobile push notifications", "team workspaces", "saved filters",
    "two-factor login", "API rate limits", "onboarding checklist", "in-app NPS survey", "Slack integration",
]
PERSONAS = ["workspace admin", "finance lead", "support agent", "new user", "team manager", "developer"]


def story(i: int) -> Example:
    """A distinct, realistic user-story row (no two share most of their words)."""
    topic, persona = TOPICS[i % len(TOPICS)], PERSONAS[i % len(PERSONAS)]
    extra = " ".join(f"criterion{i}x{k}" for k in range(6))
    return Example.chat(
        ("user", f"Write a user story for {topic} (request {i})."),
        ("assistant", f"As a {persona}, I want {topic}, so that my week {i} goes smoother.\n\n"
                      f"Acceptance criteria:\n- works for case {i}\n- {extra}"),
    )


def stories(n: int) -> list[Example]:
    return [story(i) for i in range(n)]


def jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def chat_record(i: int) -> dict[str, Any]:
    ex = story(i)
    return {"messages": [m.openai() for m in ex.messages]}


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """write(name, text_or_bytes) -> path in a temp folder."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write
