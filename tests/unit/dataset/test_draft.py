"""Drafting, critique and augmentation: only clean, new examples are offered; works over the Ollama wire too."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import ollama
import pytest
from pydantic import BaseModel

from tests.unit.dataset.conftest import story
from tools.dataset.draft import (
    augment,
    critique,
    draft_examples,
    more_like_this,
    rewrite,
)
from tools.dataset.example_text import example_to_text, parse_example_text
from tools.dataset.model import Example
from tools.errors import StructuredOutputError, UsageError
from tools.project import ProjectSpec
from tools.settings import get_settings

SPEC = ProjectSpec.model_validate_json((Path(__file__).resolve().parents[3] / "examples" /
                                        "spec_user_stories.json").read_text())
GOOD = [
    {"request": "Write a user story for exporting invoices", "answer":
        "As a finance admin, I want to export invoices, so that I can reconcile them.\n\nAcceptance criteria:\n"
        "- Export includes every invoice in the chosen month\n- The file opens in a spreadsheet"},
    {"request": "User story for inviting teammates", "answer":
        "As a workspace owner, I want to invite teammates by link, so that onboarding takes minutes.\n\n"
        "Acceptance criteria:\n- Links expire after 7 days\n- Admins can revoke a link"},
]


class ScriptedLLM:
    """Answers each structured() call with the next scripted reply, and remembers the prompts."""

    def __init__(self, replies: list[dict[str, Any]]) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []

    def structured(self, prompt: str, schema: type[BaseModel], *, system: str | None = None) -> Any:
        self.prompts.append(prompt)
        return schema.model_validate(self.replies.pop(0))


class OllamaStructured:
    """A tiny adapter: the StructuredLLM interface over the Ollama chat API with a JSON-schema format."""

    def __init__(self, model: str = "phi4-mini") -> None:
        self.client = ollama.Client(host=get_settings().ollama_host)
        self.model = model

    def structured(self, prompt: str, schema: type[BaseModel], *, system: str | None = None) -> Any:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        reply = self.client.chat(model=self.model, messages=messages, format=schema.model_json_schema(), stream=False)
        return schema.model_validate_json(reply.message.content or "")


def test_draft_offers_only_clean_new_examples():
    bad = [
        {"request": "Write a user story", "answer": "   "},                                   # empty answer
        {"request": "Story with a key", "answer": "Use sk-abcdefghijklmnopqrstuvwxyz1234 here"},  # secret
        GOOD[0],                                                                             # duplicate of existing
        {**GOOD[1], "answer": GOOD[1]["answer"] + " Thanks."},                               # near-copy of the next
    ]
    llm = ScriptedLLM([{"examples": [GOOD[1], *bad]}, {"examples": [GOOD[1]]}, {"examples": []}])
    existing = [Example.chat(("user", GOOD[0]["request"]), ("assistant", GOOD[0]["answer"]))]
    rejected: list = []
    out = draft_examples(SPEC, 2, llm, existing=existing, rejected=rejected)
    assert [ex.messages[0].content for ex in out] == [GOOD[1]["request"]]  # the second batch only repeats it
    reasons = " | ".join(r for _, r in rejected)
    for reason in ("no text", "API key", "exact duplicate", "near-duplicate"):
        assert reason in reasons
    assert "Invent metrics" in llm.prompts[0]
    assert GOOD[0]["request"] in llm.prompts[0]
    assert len(llm.prompts) == 3  # it asks again, at most three rounds, when too few survive


def test_draft_classification_rejects_labels_outside_the_spec():
    spec = SPEC.model_copy(update={"task_type": "classification", "labels": ["prd", "okr"]})
    llm = ScriptedLLM([{"examples": [{"text": "Write Q3 OKRs", "label": "okr"},
                                     {"text": "Plan a launch", "label": "gtm"}]}] + [{"examples": []}] * 5)
    out = draft_examples(spec, 2, llm)
    assert [(ex.text, ex.label) for ex in out] == [("Write Q3 OKRs", "okr")]


def test_draft_entities_become_bio_tags():
    spec = SPEC.model_copy(update={"task_type": "entity_extraction", "entity_types": ["ORG", "PERSON"]})
    llm = ScriptedLLM([{"examples": [{"text": "Ana from Acme Corp approved the PRD",
                                      "entities": [{"mention": "Ana", "label": "PERSON"},
                                                   {"mention": "Acme Corp", "label": "ORG"}]}]}])
    (ex,) = draft_examples(spec, 1, llm)
    assert ex.tags == ["B-PERSON", "O", "B-ORG", "I-ORG", "O", "O", "O"]


def test_critique_combines_format_checks_and_the_model_verdict():
    llm = ScriptedLLM([{"ok": False, "problems": ["It invents a deadline."], "suggestion": "Drop the date."}])
    bad = Example.chat(("user", "Story for SSO"), ("user", "please"), ("assistant", "As a user... by March 3"))
    result = critique(bad, SPEC, llm)
    assert not result.ok
    assert any("two user turns" in p for p in result.problems)
    assert "It invents a deadline." in result.problems
    good = critique(story(1), SPEC, ScriptedLLM([{"ok": True, "problems": []}]))
    assert good.ok
    assert good.problems == []


def test_augment_varies_and_drops_copies():
    base = [Example.chat(("user", GOOD[0]["request"]), ("assistant", GOOD[0]["answer"]))]
    variant = {"request": "Write a user story for exporting credit notes", "answer":
               "As an accountant, I want to export credit notes, so that refunds reconcile.\n\n"
               "Acceptance criteria:\n- One row per credit note\n- Totals match the ledger"}
    llm = ScriptedLLM([{"examples": [GOOD[0], variant]}])
    out = augment(base, 2, llm, spec=SPEC)
    assert [ex.messages[0].content for ex in out] == [variant["request"]]


def test_draft_through_the_ollama_wire(ollama):
    ollama.enqueue(json.dumps({"examples": GOOD}))
    out = draft_examples(SPEC, 2, OllamaStructured())
    assert len(out) == 2
    assert out[1].answer().startswith("As a workspace owner")
    (request,) = ollama.requests_to("/api/chat")
    assert request.body["format"]["title"] == "ChatBatch"  # the schema went out as Ollama's structured format


# ---------------------------------------------------------------- rewrite, more like this, edit as text

ORIGINAL = Example.chat(("system", "You write user stories for Acme."), ("user", GOOD[0]["request"]),
                        ("assistant", GOOD[0]["answer"]))


def test_rewrite_follows_the_instruction_and_keeps_the_system_prompt():
    admin = {"request": GOOD[0]["request"], "answer": GOOD[0]["answer"].replace("finance admin", "workspace admin")}
    llm = ScriptedLLM([admin])
    out = rewrite(ORIGINAL, "make the persona an admin", SPEC, llm, existing=[ORIGINAL, story(1)])
    assert out.messages[0].content == "You write user stories for Acme."  # earlier turns survive
    assert out.answer().startswith("As a workspace admin")
    assert "make the persona an admin" in llm.prompts[0]
    assert GOOD[0]["answer"] in llm.prompts[0]


def test_rewrite_asks_again_when_the_result_fails_the_checks_and_says_why_when_it_never_passes():
    shorter = {"request": GOOD[0]["request"], "answer": "As a finance admin, I want invoice export, so that I "
                                                        "can reconcile."}
    llm = ScriptedLLM([{"request": "x", "answer": ""}, {"request": GOOD[0]["request"], "answer": GOOD[0]["answer"]},
                       shorter])
    assert rewrite(ORIGINAL, "shorter", SPEC, llm).answer() == shorter["answer"]
    assert len(llm.prompts) == 3  # empty answer, then unchanged, then the real rewrite

    copy_of_other = {"request": story(2).prompt(), "answer": story(2).answer()}
    with pytest.raises(StructuredOutputError, match="near-duplicate of an existing example"):
        rewrite(ORIGINAL, "more formal", SPEC, ScriptedLLM([copy_of_other] * 3), existing=[story(2)])


def test_rewrite_of_a_labelled_text_keeps_it_in_the_projects_labels():
    spec = SPEC.model_copy(update={"task_type": "classification", "labels": ["bug", "feature"]})
    ex = Example.classified("app crashes on upload", "bug")
    llm = ScriptedLLM([{"text": "The app crashes whenever I upload a file.", "label": "bug"}])
    assert rewrite(ex, "more formal", spec, llm).text == "The app crashes whenever I upload a file."
    with pytest.raises(StructuredOutputError, match="label 'question' is not one of bug, feature"):
        rewrite(ex, "as a question", spec, ScriptedLLM([{"text": "Why does it crash?", "label": "question"}] * 3))


def test_more_like_this_skips_copies_of_the_whole_dataset():
    like = {"request": "Write a user story for exporting receipts", "answer":
            "As an office manager, I want to export receipts, so that expenses reconcile.\n\n"
            "Acceptance criteria:\n- One row per receipt\n- Currency shown"}
    llm = ScriptedLLM([{"examples": [{"request": story(3).prompt(), "answer": story(3).answer()}, like]}])
    out = more_like_this(ORIGINAL, 2, SPEC, llm, existing=[story(3)])
    assert [ex.prompt() for ex in out] == [like["request"]]
    assert GOOD[0]["request"] in llm.prompts[0]


def test_edited_text_round_trips_for_every_kind():
    ner = Example(tokens=["Ana", "from", "Acme", "Corp", "approved"], tags=["B-PERSON", "O", "B-ORG", "I-ORG", "O"])
    for ex in (ORIGINAL, Example.classified("app crashes", "bug"), ner):
        text = example_to_text(ex)
        assert parse_example_text(text, ex.kind) == ex
    assert example_to_text(ner) == "Text: Ana from Acme Corp approved\nEntities: Ana = PERSON; Acme Corp = ORG"


def test_an_edit_changes_the_example_and_keeps_multi_line_answers():
    edited = ("User: Write a user story for SSO\n\nAssistant: As an IT admin, I want SSO,\nso that people log in once."
              "\n\nAcceptance criteria:\n- Okta works")
    ex = parse_example_text(edited)
    assert ex.prompt() == "Write a user story for SSO"
    assert ex.answer() == ("As an IT admin, I want SSO,\nso that people log in once.\n\n"
                           "Acceptance criteria:\n- Okta works")


@pytest.mark.parametrize(("text", "kind", "says"), [
    ("Write a story\nAssistant: As a user...", "chat", "Line 1 ('Write a story') comes before any 'User:'"),
    ("User: Write a story", "chat", "no assistant turn"),
    ("User: one\nUser: two\nAssistant: ok", "chat", "two user turns in a row"),
    ("User: Write a story\nAssistant:   ", "chat", "message 2 (assistant) has no text"),
    ("Text: app crashes", "classification", "no 'Label:' line"),
    ("Text: Ana joined\nEntities: Bob = PERSON", "ner", "'Bob' does not appear in the text"),
    ("Text: Ana joined\nEntities: Ana PERSON", "ner", "not written as 'words = TYPE'"),
    ("   ", "chat", "is empty"),
])
def test_a_bad_edit_says_what_is_wrong(text, kind, says):
    with pytest.raises(UsageError, match=re.escape(says)) as exc:
        parse_example_text(text, kind)
    # the fix speaks of the labels to write, not of a file format or a command-line flag
    assert "--fix" not in exc.value.fix
    assert '"role"' not in exc.value.fix


def test_an_edit_without_an_answer_says_which_label_to_add():
    with pytest.raises(UsageError) as exc:
        parse_example_text("User: Write a story", "chat")
    assert exc.value.fix == "Add a line that starts with 'Assistant:' followed by the answer."


def test_draft_can_focus_on_one_category():
    llm = ScriptedLLM([{"examples": [GOOD[1]]}])
    draft_examples(SPEC, 1, llm, focus="Write a project status update.")
    assert "Every one of them is of this kind: Write a project status update." in llm.prompts[0]
