"""Shared fixtures: a private MTW_HOME per test, and the Ollama test double on a loopback port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.ollama_double import OllamaDouble
from tools.settings import get_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def mtw_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own empty workspace, and no real Ollama is ever contacted."""
    home = tmp_path / "mtw-home"
    monkeypatch.setenv("MTW_HOME", str(home))
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # discard port: 'not running'
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture
def ollama(monkeypatch: pytest.MonkeyPatch) -> Iterator[OllamaDouble]:
    """The Ollama test double, started on a free loopback port and found through OLLAMA_HOST."""
    double = OllamaDouble().start()
    monkeypatch.setenv("OLLAMA_HOST", double.url)
    get_settings.cache_clear()
    yield double
    double.stop()
    get_settings.cache_clear()
