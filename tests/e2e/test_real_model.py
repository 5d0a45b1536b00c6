"""The whole conversation in a real browser with a REAL small assistant model: SmolLM2-135M-Instruct behind the
Ollama double's real-model mode (llama-server; format= as llama.cpp's grammar). Typed answers, "not sure" and a
question in the interview, drafting, a tiny-random training, an export named by typing — and nothing stored that
the user did not give or confirm. How long each turn takes is bench/assistant_turns.py's business, not this test's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_wizard import attach, click_for, say, wait_text
from tests.fakes.llama_engine import llama_cpp_dir
from tests.fakes.ollama_double import OllamaDouble
from tests.fakes.real_model import SMOLLM2_TAG, real_model_double
from tools import sense
from tools.project import ProjectSpec

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.engine,
    # a real model on two busy cores, a training and an export through llama.cpp: `make test-all`; the graph
    # tests (tests/unit/assistant/test_hostile_replies.py) take every one of these steps in `make test`
    pytest.mark.slow,
    pytest.mark.timeout(2400),
    pytest.mark.skipif(llama_cpp_dir() is None,
                       reason="LLAMA_CPP_DIR does not point at a built llama.cpp (bin/llama-server); .ci/run sets it"),
]
ROOT = Path(__file__).resolve().parents[2]
MODEL_WAIT = 300_000
"""How long a step that waits on the real model may take in the browser (a loaded two-core machine)."""

TYPED = {"purpose": "Write user stories from one-line feature ideas", "audience": "our engineers and designers",
         "house_style": "plain, with bullets", "never_do": "Never invent metrics, dates or deadlines"}


@pytest.fixture
def real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OllamaDouble]:
    double = real_model_double(tmp_path / "engine").start()
    monkeypatch.setenv("MTW_ASSISTANT_MODEL", SMOLLM2_TAG)  # the wizard's process reads it
    yield double
    double.stop()


def _either(page, *texts: str, timeout: int = MODEL_WAIT) -> str:
    """Wait until one of `texts` shows; which one it was."""
    locator = page.get_by_text(texts[0], exact=False)
    for text in texts[1:]:
        locator = locator.or_(page.get_by_text(text, exact=False))
    locator.last.wait_for(timeout=timeout)
    return next(t for t in texts if page.get_by_text(t, exact=False).count())


def test_a_newcomer_reaches_ollama_with_a_real_small_assistant_model(real, start_wizard, page, screenshot):
    wizard = start_wizard(real.url)
    page.goto(wizard.url)
    wait_text(page, "is ready in Ollama")
    wait_text(page, "What should your model do?")

    # the interview: typed answers, a question on the way, and "not sure" once
    say(page, TYPED["purpose"])
    page.get_by_text("Who reads what the model produces?").last.wait_for(timeout=MODEL_WAIT)
    say(page, "what is LoRA?")
    page.get_by_text("Now, back to where we were").last.wait_for(timeout=MODEL_WAIT)
    say(page, "not sure")
    wait_text(page, "Not sure yet?")
    say(page, TYPED["audience"])
    page.get_by_text("How should it sound and look?").last.wait_for(timeout=MODEL_WAIT)
    say(page, TYPED["house_style"])
    page.get_by_text("Paste one or two real samples").last.wait_for(timeout=MODEL_WAIT)
    click_for(page, "Skip", "must never do")
    say(page, TYPED["never_do"])
    wait_text(page, "Here is your project")
    screenshot("real-model-spec.png")
    page.get_by_role("button", name="Looks right").last.click()
    wait_text(page, "Now your training examples")

    # drafting: checked drafts to keep, or the plain way on when the small model writes none
    page.get_by_role("button", name="Draft examples with me").last.click()
    seen = _either(page, "often cannot write good examples", "Draft 1 of", timeout=MODEL_WAIT * 2)
    screenshot("real-model-drafts.png")
    if seen == "often cannot write good examples":
        assert page.get_by_role("button", name="Get phi4-mini (2.5 GB)").count()  # a button, never a setting
        assert not page.get_by_text("MTW_ASSISTANT_MODEL").count()
        page.get_by_role("button", name="Go on without drafts").last.click()
    else:
        for _ in range(6):
            if page.get_by_text("so far", exact=False).count():
                break
            page.get_by_role("button", name="Keep").last.click()
            page.wait_for_timeout(2000)
    _either(page, "so far")
    page.get_by_role("button", name="Upload a file").last.click()
    wait_text(page, "Attach the file")
    attach(page, ROOT / "examples" / "pm_dataset.jsonl")
    wait_text(page, "examples")
    page.get_by_role("button", name="Continue to training").last.click()
    page.get_by_text("are not on this machine yet").last.wait_for(timeout=180_000)
    page.get_by_role("button", name="Use tiny-random to try the steps").last.click()
    wait_text(page, "Plan:")
    say(page, "max steps 4")
    wait_text(page, "at most 4 steps")
    page.get_by_role("button", name="Start training").last.click()
    page.get_by_text("Training finished.").last.wait_for(timeout=600_000)
    wait_text(page, "What next?")

    # the export: "yes" is never a name, "back" at the size never re-runs anything, the name is typed
    page.get_by_role("button", name="Put it into Ollama").last.click()
    wait_text(page, "What should the model be called in Ollama?")
    say(page, "PM-Stories")
    wait_text(page, "How compact should PM-Stories-v1 be?")
    say(page, "back")
    wait_text(page, "What next?")
    page.get_by_role("button", name="Put it into Ollama").last.click()
    wait_text(page, "What should the model be called in Ollama?")
    say(page, "PM-Stories")
    wait_text(page, "How compact should PM-Stories-v1 be?")
    say(page, "q8")
    page.get_by_text("ollama run PM-Stories-v1").last.wait_for(timeout=600_000)
    wait_text(page, "PM-Stories-v1 is in your Ollama")
    assert not page.get_by_text("The export did not work").count()
    assert not page.get_by_text("Comparing").count()  # going back started no evaluation
    page.get_by_role("button", name="My models").last.click()
    wait_text(page, "marks the promoted version")  # the list, not "no models are registered yet"
    page.locator("table").last.get_by_role("cell", name="PM-Stories-v1").wait_for()
    assert not page.get_by_text("No models are registered yet").count()
    screenshot("real-model-shipped.png")

    # what is stored is what the user said
    spec = ProjectSpec.model_validate_json(next((wizard.home / "projects").glob("*/spec.json")).read_text())
    for slot in ("purpose", "audience", "house_style"):
        assert sense.grounded(getattr(spec, slot), TYPED[slot]) >= 0.5, (slot, getattr(spec, slot))
    assert spec.never_do == [TYPED["never_do"]]
    assert spec.samples == []
    assert spec.labels == []
    assert spec.task_type == "generation"
    created = [r.body for r in real.requests_to("/api/create")]
    assert [b.get("model") for b in created] == ["PM-Stories-v1"]
    assert created[0].get("quantize") == "q8_0"
    # every assistant call was bounded by its schema
    chats = [r.body for r in real.requests_to("/api/chat") if r.body.get("model") == SMOLLM2_TAG]
    assert chats
    assert all(b["options"].get("num_predict", 0) > 0 for b in chats), json.dumps(chats[0]["options"])
