"""Drafting, critique and augmentation: only clean, new examples are offered; works over the Ollama wire too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ollama
from pydantic import BaseModel

from tests.unit.dataset.conftest import story
from tools.dataset.draft import augment, critique, draft_examples
from tools.dataset.model import Example
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
    assert "Invent metrics" in llm.prompts[0] and GOOD[0]["request"] in llm.prompts[0]
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
    assert any("two user turns" in p for p in result.problems) and "It invents a deadline." in result.problems
    good = critique(story(1), SPEC, ScriptedLLM([{"ok": True, "problems": []}]))
    assert good.ok and good.problems == []


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
    assert len(out) == 2 and out[1].answer().startswith("As a workspace owner")
    (request,) = ollama.requests_to("/api/chat")
    assert request.body["format"]["title"] == "ChatBatch"  # the schema went out as Ollama's structured format
