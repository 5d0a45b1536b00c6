"""Prompt texts live as files in prompts/; this module reads them."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


@cache
def text(name: str) -> str:
    """A prompt file's text, e.g. text('interview_system.md')."""
    return (PROMPTS_DIR / name).read_text(encoding="utf-8").strip()


@cache
def questions() -> dict[str, dict[str, Any]]:
    """The interview's questions, keyed by spec slot, in asking order."""
    data: dict[str, dict[str, Any]] = yaml.safe_load(text("interview_questions.yaml"))
    return data
