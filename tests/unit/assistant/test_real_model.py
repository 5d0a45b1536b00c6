"""The assistant's own prompts meet a REAL small model: SmolLM2-135M-Instruct answering through the Ollama double's
real-model mode (llama-server, format= as llama.cpp's grammar). What a user with modest hardware gets: every call
bounded, every answer checked, nothing stored that the user did not say. Few calls, each with a short budget."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from pydantic import BaseModel, Field

from tests.fakes.llama_engine import llama_cpp_dir
from tests.fakes.ollama_double import OllamaDouble
from tests.fakes.real_model import SMOLLM2_TAG, real_model_double
from tests.unit.assistant.helpers import Session
from tools import sense
from tools.errors import MTWError, StructuredOutputError
from tools.project import ProjectSpec

pytestmark = [
    pytest.mark.engine,
    pytest.mark.timeout(900),
    pytest.mark.skipif(llama_cpp_dir() is None,
                       reason="LLAMA_CPP_DIR does not point at a built llama.cpp (bin/llama-server); .ci/run sets it"),
]

SPEC = ProjectSpec(name="Stories", purpose="Write user stories from one-line feature ideas", task_type="generation",
                   audience="engineers", house_style="As a / I want / So that, then acceptance criteria as bullets",
                   never_do=["Never invent metrics"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OllamaDouble]:
    """One real-model double for the module: SmolLM2 stays loaded in its llama-server between tests."""
    double = real_model_double(tmp_path_factory.mktemp("engine")).start()
    yield double
    double.stop()


@pytest.fixture
def real(served: OllamaDouble, monkeypatch: pytest.MonkeyPatch) -> OllamaDouble:
    """The module's double found through OLLAMA_HOST, with SmolLM2 as the assistant model."""
    from tools.settings import get_settings

    monkeypatch.setenv("OLLAMA_HOST", served.url)
    monkeypatch.setenv("MTW_ASSISTANT_MODEL", SMOLLM2_TAG)
    get_settings.cache_clear()
    served.requests.clear()
    return served


class Audience(BaseModel):
    audience: str = Field(max_length=120)


def test_the_real_model_mode_constrains_bounds_and_streams(real: OllamaDouble):
    import ollama

    c = ollama.Client(host=real.url)
    schema = Audience.model_json_schema()
    reply = c.chat(SMOLLM2_TAG, messages=[{"role": "user", "content": "Who reads the output? Our engineers."}],
                   format=schema, options={"temperature": 0, "num_predict": 60})
    Audience.model_validate_json(reply.message.content or "")  # the grammar made it the schema's shape
    cut = c.chat(SMOLLM2_TAG, messages=[{"role": "user", "content": "Count from one to a hundred in words."}],
                 options={"temperature": 0, "num_predict": 8})
    assert cut.done_reason == "length"
    assert cut.eval_count <= 8
    parts = list(c.chat(SMOLLM2_TAG, messages=[{"role": "user", "content": "Say hello to the team."}], stream=True,
                        options={"temperature": 0, "num_predict": 16}))
    assert len(parts) > 2  # token by token, as Ollama streams
    assert parts[-1].done


async def test_the_interview_on_a_real_model_stores_only_what_the_user_said(real: OllamaDouble):
    from assistant.llm import LLM

    typed = {"purpose": "Write user stories from one-line feature ideas", "audience": "our engineers and designers",
             "house_style": "plain, with bullets"}
    s = Session(LLM(time_limit_s=120), time_limit_s=120)  # type: ignore[arg-type]
    await s.send()
    for answer in [*typed.values(), "skip", "Never invent metrics, dates or deadlines"]:
        q = await s.send(answer)
    assert q is not None
    assert q["kind"] == "confirm"
    spec = ProjectSpec(**(await s.state())["spec"])
    for slot, answer in typed.items():
        value = getattr(spec, slot)
        assert value, slot
        assert sense.grounded(value, answer) >= 0.5, (slot, value)  # the user's words, perhaps shortened
    assert spec.task_type == "generation"
    assert spec.never_do == ["Never invent metrics, dates or deadlines"]
    assert spec.labels == []
    chats = real.requests_to("/api/chat")
    assert chats
    assert all(0 < r.body["options"]["num_predict"] <= 200 for r in chats)  # every reading bounded by its schema


async def test_intent_mapping_on_a_real_model_picks_an_offered_choice_or_nothing(real: OllamaDouble):
    from assistant import routing
    from assistant.llm import LLM

    question = {"id": 1, "text": "Where should your training examples come from?", "choices": {
        "upload": "Upload a file of examples", "sample": "Start from the sample PM dataset",
        "draft": "Draft examples with me"}, "free_text": False}
    llm = LLM(SMOLLM2_TAG, time_limit_s=120)
    text = "I'd like to begin with the examples you ship with"
    try:
        ip = await llm.astructured(routing.interpretation_prompt(text, question), routing.Interpretation)
    except StructuredOutputError:
        return  # a model that cannot say is a turn for the guided form, which the graph tests cover
    intent = routing.from_interpretation(ip, text, question)
    assert intent["kind"] in ("answer", "question", "status", "unclear", "setting", "navigate")
    if intent["kind"] == "answer":
        assert intent["value"] in question["choices"]  # never an invented key


def test_drafting_on_a_real_model_gives_only_checked_drafts_or_says_how_to_get_better_ones(real: OllamaDouble):
    from assistant.llm import LLM
    from tools.dataset.draft import WeakModel, draft_examples, format_issues, nonsense

    rejected: list = []
    weak: WeakModel | None = None
    drafts = []
    try:
        # one call: no second one starts after the deadline
        drafts = draft_examples(SPEC, 2, LLM(time_limit_s=90), rejected=rejected, deadline=time.monotonic() + 1)
    except WeakModel as exc:
        weak = exc
    if weak is not None:
        assert "bigger assistant model" in weak.fix
        assert "MTW_" not in str(weak)
        return
    assert len(real.requests_to("/api/chat")) == 1
    assert len(drafts) <= 2
    for ex in drafts:
        assert not [i for i in format_issues(ex) if i.severity == "error"]
        assert nonsense(ex, spec=SPEC) is None
    sizes = [json.dumps(r.body["format"]).count('"maxItems"') for r in real.requests_to("/api/chat")]
    assert all(sizes)  # each call asked for a bounded number of drafts


def test_rewrite_on_a_real_model_is_checked_or_refused_with_the_reason(real: OllamaDouble):
    from assistant.llm import LLM
    from tools.dataset.draft import format_issues, rewrite
    from tools.dataset.model import Example

    original = Example.chat(("user", "Write a user story for exporting invoices"),
                            ("assistant", "As a finance admin, I want to export invoices, so that I can reconcile "
                                          "them.\n\nAcceptance criteria:\n- Every invoice of the month is in the file"))
    refused: MTWError | None = None
    try:
        out = rewrite(original, "make it shorter", SPEC, LLM(time_limit_s=120))
    except MTWError as exc:
        refused = exc
    if refused is not None:
        assert refused.message.startswith("The assistant could not rewrite this example as asked (")
        return
    assert not [i for i in format_issues(out) if i.severity == "error"]
    assert not sense.looping(out.answer())


def test_a_kb_answer_on_a_real_model_is_from_the_guide_or_the_guide_itself(real: OllamaDouble):
    from tools.troubleshoot.answer import answer_problem, explain_question, relevant_lines

    found = explain_question("what is LoRA?", model=SMOLLM2_TAG, time_limit_s=120)
    assert found.entries
    if found.answer is not None:
        assert answer_problem(found.answer, "what is LoRA?", found.entries) == ""
    else:
        assert "LoRA" in relevant_lines(found.entries[0], "what is LoRA?").splitlines()[0]
    (chat,) = real.requests_to("/api/chat")
    assert chat.body["options"]["num_predict"] == 320

