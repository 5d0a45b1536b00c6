"""Training tests: one CPU thread (oversubscribed OpenMP threads slow a shared 2-core machine down 5x) and datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"

FEATURES = ["password reset", "CSV export", "dark mode", "team invites", "billing page", "two-factor login",
            "search filters", "email digests", "audit log", "bulk upload", "push alerts", "saved views"]


def story(feature: str) -> list[dict[str, str]]:
    """A PM chat example: a request and a user story in the team's format."""
    return [
        {"role": "system", "content": "You write user stories."},
        {"role": "user", "content": f"Write a user story for {feature}."},
        {"role": "assistant", "content": f"As a user, I want {feature} so that I save time.\n"
                                         f"Acceptance criteria:\n- {feature} works on every page."},
    ]


def write_chat(path: Path, features: list[str]) -> Path:
    path.write_text("".join(json.dumps({"messages": story(f)}) + "\n" for f in features), encoding="utf-8")
    return path


@pytest.fixture
def chat_file(tmp_path: Path) -> Path:
    return write_chat(tmp_path / "stories.jsonl", FEATURES)


DATA = Path(__file__).parent / "data"
