"""Examples from the user's own documents: the upload, private data flagged first, drafts grounded in passages."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Command

from assistant.context import WizardContext
from assistant.conversation import ask, go
from assistant.nodes import Node, routes
from assistant.stages.author import store_of
from assistant.state import WizardState, dataset_of, spec_of
from assistant.ui_events import inert, say
from tools.dataset.model import Example
from tools.errors import MTWError

DOC_PASSAGES = 3
"""Passages of a document drafted from per batch (two drafts each)."""


@routes(asks=(Node.receive_document,))
def ask_document(state: WizardState) -> Command[Any]:
    """Ask for a document to draft from: PDF, DOCX, Markdown, HTML or text."""
    from tools.dataset.documents import SUFFIXES

    return ask(state, "Attach a document with the 📎 paperclip — a PRD, spec, meeting notes or emails as PDF, DOCX, "
                      "Markdown, HTML or text. I'll split it into passages and draft question / answer pairs from "
                      "them, each shown with its passage.", then=Node.receive_document, stage="dataset", kind="file",
               accept=list(SUFFIXES), choices={"back": "Choose another way"})


def keep_document(project: str, src: Path, name: str) -> Path:
    """Keep a document in the project under its own name, in a folder named by its content (never overwritten)."""
    import hashlib

    from tools.dataset.store import HASH_CHARS
    from tools.fileio import atomic_write_bytes
    from tools.project import project_dir, slugify

    data = src.read_bytes()
    dest = project_dir(slugify(project)) / "documents" / hashlib.sha256(data).hexdigest()[:HASH_CHARS] / name
    if not dest.exists():
        atomic_write_bytes(dest, data)
    return dest


@routes(Node.draft_document, Node.choose_data, Node.listen, asks=(Node.on_privacy,))
async def receive_document(state: WizardState) -> Command[Any]:
    """Keep the document in the project, read it into passages, and flag private data before anything is drafted."""
    from tools.dataset.documents import SUFFIXES, read_document

    intent = state["intent"]
    if intent.get("kind") != "file":
        return go(Node.choose_data)
    src, name = Path(intent["value"]["path"]), Path(str(intent["value"].get("name") or "document")).name
    if Path(name).suffix.lower() not in SUFFIXES:
        say(f"**{name}** is not a document I can read. Attach a PDF, DOCX, Markdown, HTML or text file.")
        return go(Node.listen)
    try:
        kept = await asyncio.to_thread(keep_document, spec_of(state).name, src, name)
        doc = await asyncio.to_thread(read_document, kept)
    except (MTWError, OSError) as exc:
        say(f"I could not read **{name}**: {getattr(exc, 'message', exc)} {getattr(exc, 'fix', '')}".strip())
        return go(Node.listen)
    if not doc.passages:
        say(f"**{name}** has no text I can draft from (a scanned PDF has only images). Attach another document.")
        return go(Node.listen)
    update = {"document": {"path": str(kept), "name": name, "passages": len(doc.passages), "next": 0,
                           "include_flagged": False}}
    say(f"Read **{name}**: {len(doc.passages)} passage{'s' * (len(doc.passages) != 1)}."
        + (f" {doc.redacted} secret{'s' * (doc.redacted != 1)} (keys, tokens) replaced by <SECRET>: the assistant "
           "never sees them." if doc.redacted else ""))
    if doc.privacy:
        flags = "\n".join(f"- ⚠️ {inert(i.message)}" for i in doc.privacy[:10])  # quotes the document
        return ask(state, f"**Private data found** before drafting anything:\n{flags}\n\nShould drafts use those "
                          "passages?", then=Node.on_privacy, stage="dataset",
                   choices={"skip": "Continue without those passages", "include": "Include them"}, update=update)
    return go(Node.draft_document, update)


@routes(Node.draft_document)
def on_privacy(state: WizardState) -> Command[Any]:
    """Draft without the flagged passages, or with them when the user says they may be used."""
    doc = dict(dataset_of(state).get("document") or {})
    doc["include_flagged"] = state["intent"].get("value") == "include"
    return go(Node.draft_document, {"document": doc})


@routes(Node.review_draft, Node.after_drafts)
async def draft_document(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Draft from the next few passages of the document; each draft is reviewed with its passage."""
    from tools.dataset.documents import read_document
    from tools.dataset.grounded import draft_from_document

    doc_state = dict(dataset_of(state).get("document") or {})
    start = int(doc_state.get("next", 0))
    picked = list(range(start + 1, min(start + DOC_PASSAGES, int(doc_state["passages"])) + 1))
    which = f"passage {picked[0]}" if picked[0] == picked[-1] else f"passages {picked[0]}–{picked[-1]}"
    say(f"Drafting from {which} of {doc_state['name']} — this takes a moment.")
    store = await asyncio.to_thread(store_of, state)
    rejected: list[tuple[Example | None, str]] = []
    try:
        doc = await asyncio.to_thread(read_document, doc_state["path"])
        grounded = await asyncio.to_thread(draft_from_document, doc, spec_of(state), runtime.context.llm,
                                           passages=picked, include_flagged=bool(doc_state.get("include_flagged")),
                                           existing=store.examples(), rejected=rejected)
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        grounded = []
    doc_state["next"] = picked[-1]
    skipped = [why for ex, why in rejected if ex is None and "private data" in why]
    if skipped:
        say("Skipped (private data): " + "; ".join(skipped) + ".")
    if not grounded:
        say("No usable drafts came from those passages.")
        return go(Node.after_drafts, {"document": doc_state})
    return go(Node.review_draft, {"document": doc_state, "draft_index": 0,
                                  "drafts": [g.example.model_dump() for g in grounded],
                                  "draft_sources": [{"label": g.passage.label, "text": g.passage.text}
                                                 for g in grounded]})
