"""Examples from the user's documents: text read from each format, passages, privacy flagged, grounded drafts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.dataset.test_draft import SPEC, OllamaStructured, ScriptedLLM
from tools.dataset.documents import extract_blocks, read_document, split_passages
from tools.dataset.grounded import draft_from_document
from tools.dataset.model import Example
from tools.errors import UsageError

GOALS = ("Teams lose track of invoices because exports only cover one week at a time and finance has to stitch "
         "files together by hand every month before closing the books.")
SCOPE = ("The monthly export includes every invoice in the chosen month, with totals per customer, and it opens "
         "in any spreadsheet without a conversion step or a plugin.")
PRD_MD = f"# Invoice export PRD\n\n## Goals\n\n{GOALS}\n\n## Scope\n{SCOPE}\n"


def _docx(path: Path) -> Path:
    from docx import Document

    doc = Document()
    doc.add_heading("Goals", level=1)
    doc.add_paragraph(GOALS)
    doc.add_heading("Scope", level=1)
    doc.add_paragraph(SCOPE)
    table = doc.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Owner", "Finance platform team"
    doc.save(str(path))
    return path


def _pdf(path: Path, pages: list[str]) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 6, text)
    path.write_bytes(bytes(pdf.output()))
    return path


def _sections(doc_path: Path) -> dict[str, str]:
    doc = read_document(doc_path)
    return {p.where: p.text for p in doc.passages}


def test_markdown_passages_follow_its_sections(write):
    got = _sections(write("prd.md", PRD_MD))
    assert got == {"section 'Goals'": GOALS, "section 'Scope'": SCOPE}


def test_html_drops_scripts_and_keeps_headings_as_sections(write):
    html = (f"<html><head><style>p {{color: red}}</style><script>track('visit')</script></head><body>"
            f"<nav>Home | Docs</nav><h2>Goals</h2><p>{GOALS}</p><h2>Scope</h2><ul><li><p>{SCOPE}</p></li></ul>"
            f"</body></html>")
    got = _sections(write("prd.html", html))
    assert got == {"section 'Goals'": GOALS, "section 'Scope'": SCOPE}


def test_docx_headings_paragraphs_and_tables(tmp_path):
    got = _sections(_docx(tmp_path / "prd.docx"))
    assert got["section 'Goals'"] == GOALS
    assert got["section 'Scope'"].startswith(SCOPE)
    assert "Owner | Finance platform team" in got["section 'Scope'"]


def test_pdf_passages_name_their_page(tmp_path):
    doc = read_document(_pdf(tmp_path / "prd.pdf", [GOALS, SCOPE]))
    assert [p.where for p in doc.passages] == ["page 1", "page 2"]
    assert "stitch files together" in " ".join(doc.passages[0].text.split())
    assert doc.passages[1].label == "passage 2 (page 2) of prd.pdf"


def test_a_pdf_without_text_says_it_is_probably_scanned(tmp_path):
    with pytest.raises(UsageError, match="scanned pages"):
        extract_blocks(_pdf(tmp_path / "scan.pdf", ["", ""]))


def test_unsupported_and_broken_files_get_a_plain_message(write):
    with pytest.raises(UsageError, match=r"'\.pptx' is not a document type.*PDF, Word \(\.docx\)"):
        extract_blocks(write("deck.pptx", b"PK"))
    with pytest.raises(UsageError, match="not a Word .docx file"):
        extract_blocks(write("old.docx", b"\xd0\xcf\x11\xe0 an old binary .doc"))
    with pytest.raises(UsageError, match="not a PDF the wizard can read"):
        extract_blocks(write("broken.pdf", b"%PDF-1.4 garbage"))


def test_long_text_is_cut_at_sentence_ends_into_bounded_passages():
    sentences = [f"Sentence {i} explains one more detail of the rollout plan for the billing team." for i in range(60)]
    passages = split_passages([("", " ".join(sentences))], "notes.txt", max_words=100)
    assert len(passages) > 1
    assert all(len(p.text.split()) <= 100 for p in passages)
    assert all(p.text.endswith("billing team.") for p in passages)  # no sentence is cut in half
    assert " ".join(p.text for p in passages) == " ".join(sentences)  # nothing lost


def test_cp1252_text_is_read_not_rejected(write):
    (passage,) = read_document(write("memo.txt", ("Café rollout: " + GOALS).encode("cp1252"))).passages
    assert passage.text.startswith("Café rollout")


def test_private_data_is_flagged_before_drafting_and_secrets_never_reach_the_model(write):
    text = (f"## Contacts\n\nFor questions write to dana.lopez@acme-corp.io or call +1 415 723 4567 before the "
            f"launch review next week.\n\n## Setup\n\nThe staging key is sk-abcdefghijklmnopqrstuvwxyz123456 and "
            f"it must be rotated after the demo.\n\n## Goals\n\n{GOALS}")
    doc = read_document(write("notes.md", text))
    codes = {(i.line, i.code) for i in doc.privacy}
    assert codes == {(1, "pii_email"), (1, "pii_phone"), (2, "secret")}
    assert doc.privacy[0].message.startswith("Passage 1 (section 'Contacts') of notes.md contains")
    assert doc.redacted == 1
    assert "sk-abc" not in doc.passages[1].text
    assert "<SECRET>" in doc.passages[1].text

    llm = ScriptedLLM([{"examples": [{"request": "Why do invoice exports need to change?",
                                      "answer": "Exports only cover one week, so finance stitches files by hand."}]}])
    rejected: list = []
    drafts = draft_from_document(doc, SPEC, llm, rejected=rejected)
    assert len(llm.prompts) == 1
    assert GOALS in llm.prompts[0]
    assert [d.passage.index for d in drafts] == [3]
    assert sum("skipped: it holds private data" in r for _, r in rejected) == 2

    llm = ScriptedLLM([{"examples": []}] * 3)
    draft_from_document(doc, SPEC, llm, include_flagged=True)
    assert len(llm.prompts) == 3
    assert all("sk-abc" not in p for p in llm.prompts)


def test_grounded_drafts_keep_their_passage_and_pass_the_usual_checks(write):
    doc = read_document(write("prd.md", PRD_MD))
    good = {"request": "What does the monthly invoice export include?",
            "answer": "Every invoice in the chosen month, with totals per customer; it opens in any spreadsheet."}
    llm = ScriptedLLM([
        {"examples": [{"request": "Why change the invoice export?", "answer": "  "}]},  # empty answer
        {"examples": [good, good]},                                                     # a copy of itself
    ])
    existing = [Example.chat(("user", "Write a user story for SSO"), ("assistant", "As an admin, I want SSO."))]
    rejected: list = []
    drafts = draft_from_document(doc, SPEC, llm, existing=existing, rejected=rejected, style="instruction")
    assert [(d.example.answer(), d.passage.where) for d in drafts] == [(good["answer"], "section 'Scope'")]
    assert "no text" in rejected[0][1]
    assert "exact duplicate" in rejected[1][1]
    assert "instructions a user would give" in llm.prompts[0]
    assert GOALS in llm.prompts[0]
    assert SCOPE in llm.prompts[1]
    assert "never invent names" in llm.prompts[1]


def test_only_generation_projects_draft_from_documents(write):
    doc = read_document(write("prd.md", PRD_MD))
    spec = SPEC.model_copy(update={"task_type": "classification", "labels": ["bug", "feature"]})
    with pytest.raises(UsageError, match="picks labels or finds entities"):
        draft_from_document(doc, spec, ScriptedLLM([]))


def test_grounded_drafting_through_the_ollama_wire(ollama, write):
    doc = read_document(write("prd.md", f"## Scope\n\n{SCOPE}\n"))
    ollama.enqueue(json.dumps({"examples": [{"request": "Which invoices does the monthly export cover?",
                                             "answer": "Every invoice in the chosen month."}]}))
    (draft,) = draft_from_document(doc, SPEC, OllamaStructured(), per_passage=1)
    assert draft.passage.text == SCOPE
    (request,) = ollama.requests_to("/api/chat")
    assert request.body["format"]["title"] == "ChatBatch"
    assert SCOPE in request.body["messages"][-1]["content"]
