"""Draft examples from the user's own documents: request / answer pairs grounded in one passage at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tools.dataset.documents import Document, Passage
from tools.dataset.draft import SYSTEM, Pool, gate, project_brief, sized, to_examples
from tools.dataset.drafted import ChatBatch
from tools.dataset.model import Example
from tools.errors import UsageError
from tools.llm_protocol import StructuredLLM
from tools.project import ProjectSpec


@dataclass(frozen=True)
class GroundedDraft:
    """A draft written from one passage of a document; the passage is shown with it."""

    example: Example
    passage: Passage


_DOC_ASKS = {
    "qa": ("questions a reader of this document would ask, each answered from the passage alone",
           "question"),
    "instruction": ("instructions a user would give (summarise, draft, list, rewrite) about this passage, each "
                    "carried out from the passage alone", "instruction"),
}
DocStyle = Literal["qa", "instruction"]


def _passage_prompt(spec: ProjectSpec, passage: Passage, k: int, style: DocStyle) -> str:
    what, word = _DOC_ASKS[style]
    brief = project_brief(spec) + "\n\n" if (spec.purpose or spec.name) else ""
    return (f"{brief}Below is {passage.label}. Write {k} request / answer pairs: {what}. Each request must make "
            f"sense without the passage in front of the reader (name the feature, project or decision it is "
            f"about). Answers use only facts stated in the passage, in the house style; never invent names, "
            f"numbers or dates. Each {word} differs from the others.\n\n--- passage ---\n{passage.text}\n--- end ---")


def draft_from_document(doc: Document, spec: ProjectSpec, llm: StructuredLLM, *, per_passage: int = 2,
                        style: DocStyle = "qa", passages: Sequence[int] | None = None, include_flagged: bool = False,
                        existing: Sequence[Example] = (), rejected: list[tuple[Example | None, str]] | None = None
                        ) -> list[GroundedDraft]:
    """Question/answer (or instruction/answer) drafts grounded in the document's passages, each kept with it.

    Passages with private data (`doc.privacy`) are skipped until the user says they may be used
    (`include_flagged`); `passages` picks passage numbers (all by default). Every draft passes the same
    checks and duplicate gate as any other draft.
    """
    if spec.task_type not in (None, "generation"):
        raise UsageError("Drafting from documents writes request / answer pairs, for a model that writes text; "
                         "this project picks labels or finds entities.",
                         "Upload labelled examples (CSV or JSONL) instead, or draft them from the project brief.")
    chosen = set(passages) if passages is not None else None
    flagged = doc.flagged()
    pool = Pool(existing)
    out: list[GroundedDraft] = []
    for passage in doc.passages:
        if chosen is not None and passage.index not in chosen:
            continue
        if passage.index in flagged and not include_flagged:
            if rejected is not None:
                rejected.append((None, f"{passage.label} was skipped: it holds private data"))
            continue
        batch = llm.structured(_passage_prompt(spec, passage, per_passage, style), sized(ChatBatch, per_passage),
                               system=SYSTEM)
        for ex in gate(to_examples(batch, spec), pool, rejected, spec=spec)[:per_passage]:
            out.append(GroundedDraft(example=ex, passage=passage))
    return out
