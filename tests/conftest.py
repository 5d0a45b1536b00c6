"""Shared fixtures: a private MTW_HOME and Hugging Face cache per test, and the Ollama and Hub test doubles."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.hf_hub_double import HubDouble
from tests.fakes.ollama_double import OllamaDouble
from tools.settings import get_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MTW_STRICT_ROUTES", "1")  # a node going somewhere its @routes does not declare fails the test


LONGEST_FIRST = ("tests/unit/export/test_real_model.py", "tests/e2e/", "tests/reliability/test_browser.py",
                 "tests/reliability/", "tests/unit/assistant/test_real_model.py", "tests/unit/export/test_engine.py",
                 "tests/unit/evaluate/test_eval_engine.py", "tests/unit/assistant/test_round_two.py",
                 "tests/unit/assistant/test_preference_chat.py", "tests/unit/train/test_resume.py",
                 "tests/unit/assistant/test_stages.py", "tests/unit/test_download.py",
                 "tests/unit/assistant/test_journey.py", "tests/unit/dataset/test_hostile.py",
                 "tests/unit/train/test_gguf_base.py")
"""The real model's proof (training SmolLM2-135M: minutes) starts first, beside the browser files; then the
reliability files and these unit files: the short unit tests fill in around them and no long one is left for the
end."""


def _group(nodeid: str) -> str:
    """Which worker-sized share a test belongs to: every browser test in one (one Chromium and one wizard at a
    time), the other reliability tests in another, each unit file in its own (its module fixtures, a trained run or
    a llama.cpp engine, are built once)."""
    path = nodeid.split("::")[0]
    if path.startswith(("tests/e2e/", "tests/reliability/test_browser.py")):
        return "browser"
    if path.startswith("tests/reliability/"):
        return "reliability"
    return path


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With pytest-xdist (`make test`: `-n 2 --dist loadgroup --no-loadscope-reorder`) each share stays on one
    worker, and the shares start in this order, the longest first."""
    items.sort(key=lambda item: next((i for i, p in enumerate(LONGEST_FIRST) if item.nodeid.startswith(p)),
                                     len(LONGEST_FIRST)))  # stable: file order kept within each
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item.nodeid)))


@pytest.fixture(autouse=True)
def mtw_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own empty workspace and model cache; no real Ollama or Hub is ever contacted."""
    home = tmp_path / "mtw-home"
    monkeypatch.setenv("MTW_HOME", str(home))
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # discard port: 'not running'
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
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


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubDouble]:
    """The Hugging Face Hub test double serving test-org/tiny-chat, found through HF_ENDPOINT."""
    double = HubDouble().with_tiny_chat().start()
    monkeypatch.setenv("HF_ENDPOINT", double.url)
    yield double
    double.stop()
