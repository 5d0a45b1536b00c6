"""Draft, critique and vary examples from a project spec through structured LLM output; only clean ones are offered."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tools.dataset.checks import NEAR_DUP_THRESHOLD, fingerprint, privacy_issues, row_issues, signature
from tools.dataset.model import Example, Issue
from tools.dataset.readers import bio_from_spans
from tools.llm_protocol import StructuredLLM
from tools.project import ProjectSpec

BATCH = 5
MAX_ROUNDS = 3
SHOWN_EXISTING = 8


# ---------------------------------------------------------------- structured output schemas (one per task type)


class DraftedChat(BaseModel):
    """A request a user would type and the answer the tuned model should give."""

    model_config = ConfigDict(extra="forbid")
    request: str = Field(description="What the user asks, in their own words.")
    answer: str = Field(description="The ideal answer, in the house style.")


class DraftedLabel(BaseModel):
    """A text and the class it belongs to."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="A realistic input text.")
    label: str = Field(description="Its class, exactly one of the allowed labels.")


class DraftedEntity(BaseModel):
    """One entity mention, copied exactly from the text."""

    model_config = ConfigDict(extra="forbid")
    mention: str = Field(description="The exact words from the text.")
    label: str = Field(description="The entity type.")


class DraftedEntities(BaseModel):
    """A text and the entities in it."""

    model_config = ConfigDict(extra="forbid")
    text: str
    entities: list[DraftedEntity] = Field(default_factory=list)


class DraftBatch(BaseModel):
    """A batch of drafted items; each task type narrows what an item is."""

    model_config = ConfigDict(extra="forbid")
    examples: list[Any]


class ChatBatch(DraftBatch):
    """Drafted chat examples."""

    examples: list[DraftedChat]


class LabelBatch(DraftBatch):
    """Drafted classification examples."""

    examples: list[DraftedLabel]


class EntityBatch(DraftBatch):
    """Drafted entity-extraction examples."""

    examples: list[DraftedEntities]


class CritiqueReply(BaseModel):
    """The model's verdict on one example against the spec."""

    model_config = ConfigDict(extra="forbid")
    ok: bool = Field(description="True when the example follows the spec.")
    problems: list[str] = Field(default_factory=list, description="Each way it breaks the spec, one sentence each.")
    suggestion: str = Field(default="", description="How to fix it, in one or two sentences.")


class Critique(BaseModel):
    """Everything wrong with one example: format issues from the checks, spec problems from the model."""

    ok: bool
    problems: list[str]
    suggestion: str = ""
    issues: list[Issue] = Field(default_factory=list)


# ---------------------------------------------------------------- prompts

SYSTEM = ("You write training examples for a fine-tuned model. Follow the project brief exactly, write like a "
          "real person, and answer only with the requested JSON.")


def _brief(spec: ProjectSpec) -> str:
    lines = [f"Purpose: {spec.purpose or spec.name}"]
    if spec.audience:
        lines.append(f"Audience: {spec.audience}")
    if spec.house_style:
        lines.append(f"House style: {spec.house_style}")
    if spec.never_do:
        lines.append("Never: " + "; ".join(spec.never_do))
    if spec.labels:
        lines.append("Allowed labels: " + ", ".join(spec.labels))
    if spec.entity_types:
        lines.append("Entity types: " + ", ".join(spec.entity_types))
    for i, sample in enumerate(spec.samples[:3], start=1):
        lines.append(f"Sample {i} of the user's own writing:\n{sample}")
    return "\n".join(lines)


def _draft_prompt(spec: ProjectSpec, k: int, existing: Sequence[Example]) -> str:
    kind = {"classification": "labelled texts", "entity_extraction": "texts with their entities"}.get(
        spec.task_type or "", "request / answer pairs")
    avoid = "\n".join(f"- {ex.prompt()[:160]}" for ex in list(existing)[-SHOWN_EXISTING:])
    return (f"{_brief(spec)}\n\nWrite {k} new {kind}. Make each one different in topic and wording from the others"
            + (f" and from these existing ones:\n{avoid}" if avoid else ".")
            + "\nAnswers must be complete, follow the house style and never do what the brief forbids.")


# ---------------------------------------------------------------- conversion and gating


def _to_examples(batch: DraftBatch, spec: ProjectSpec) -> list[Example | str]:
    """Canonical rows from a drafted batch; a string in place of a row says why it was unusable."""
    return [_to_example(item, spec) for item in batch.examples]


def _to_example(item: BaseModel, spec: ProjectSpec) -> Example | str:
    if isinstance(item, DraftedChat):
        return Example.chat(("user", item.request.strip()), ("assistant", item.answer.strip()))
    if isinstance(item, DraftedLabel):
        if spec.labels and item.label not in spec.labels:
            return f"label '{item.label}' is not one of {', '.join(spec.labels)}"
        return Example.classified(item.text.strip(), item.label.strip())
    if isinstance(item, DraftedEntities):
        spans: list[dict[str, Any]] = []
        cursor = 0
        for ent in item.entities:
            start = item.text.find(ent.mention, cursor)
            if start < 0 or not ent.mention:
                return f"entity '{ent.mention}' does not appear in the text"
            if spec.entity_types and ent.label not in spec.entity_types:
                return f"entity type '{ent.label}' is not one of {', '.join(spec.entity_types)}"
            spans.append({"start": start, "end": start + len(ent.mention), "label": ent.label})
            cursor = start + len(ent.mention)
        issues: list[Issue] = []
        ex = bio_from_spans(item.text, spans, "entities", None, issues)
        return ex if ex is not None else issues[0].message
    return "unexpected item"


def format_issues(ex: Example) -> list[Issue]:
    """The per-row checks every drafted example must pass before it is offered."""
    return row_issues(ex) + privacy_issues(ex)


class _Pool:
    """Rows already in the dataset or accepted so far, for duplicate and near-duplicate gating."""

    def __init__(self, rows: Sequence[Example]) -> None:
        import numpy as np

        self._keys = {fingerprint(ex) for ex in rows}
        self._sigs = np.stack([signature(ex.all_text()) for ex in rows]) if rows else None

    def why_not(self, ex: Example) -> str | None:
        if fingerprint(ex) in self._keys:
            return "exact duplicate of an existing example"
        sig = signature(ex.all_text())
        if self._sigs is not None and float((self._sigs == sig).mean(axis=1).max()) >= NEAR_DUP_THRESHOLD:
            return "near-duplicate of an existing example"
        return None

    def add(self, ex: Example) -> None:
        import numpy as np

        self._keys.add(fingerprint(ex))
        sig = signature(ex.all_text())[None, :]
        self._sigs = sig if self._sigs is None else np.vstack([self._sigs, sig])


def _gate(candidates: list[Example | str], pool: _Pool, rejected: list[tuple[Example | None, str]] | None
          ) -> list[Example]:
    accepted = []
    for cand in candidates:
        if isinstance(cand, str):
            reason: str | None = cand
        else:
            errors = [i for i in format_issues(cand) if i.severity == "error"]
            reason = errors[0].message if errors else pool.why_not(cand)
        if reason is None and not isinstance(cand, str):
            pool.add(cand)
            accepted.append(cand)
        elif rejected is not None:
            rejected.append((None if isinstance(cand, str) else cand, reason or ""))
    return accepted


def _batch_schema(spec: ProjectSpec) -> type[DraftBatch]:
    if spec.task_type == "classification":
        return LabelBatch
    if spec.task_type == "entity_extraction":
        return EntityBatch
    return ChatBatch


# ---------------------------------------------------------------- the three operations


def draft_examples(spec: ProjectSpec, n: int, llm: StructuredLLM, *, existing: Sequence[Example] = (),
                   rejected: list[tuple[Example | None, str]] | None = None) -> list[Example]:
    """Up to `n` new examples written from the spec; each passed the checks and is no near-copy of another.

    Asks in batches of 5, for at most 3 rounds per batch needed; `rejected` collects what was turned away and why.
    """
    schema = _batch_schema(spec)
    pool = _Pool(existing)
    accepted: list[Example] = []
    rounds = MAX_ROUNDS * max(1, -(-n // BATCH))
    for _ in range(rounds):
        if len(accepted) >= n:
            break
        k = min(BATCH, n - len(accepted))
        batch = llm.structured(_draft_prompt(spec, k, [*existing, *accepted]), schema, system=SYSTEM)
        accepted += _gate(_to_examples(batch, spec), pool, rejected)[: n - len(accepted)]
    return accepted


def critique(example: Example, spec: ProjectSpec, llm: StructuredLLM) -> Critique:
    """Format problems from the checks plus the model's verdict on whether the example follows the spec."""
    issues = format_issues(example)
    if example.label is not None and spec.labels and example.label not in spec.labels:
        issues.append(Issue(code="unseen_label", severity="error", line=example.line,
                            message=f"Label '{example.label}' is not one of the project's labels.",
                            fix=f"Use one of: {', '.join(spec.labels)}."))
    shown = "\n".join(f"{m.role}: {m.content}" for m in example.messages)
    if example.label is not None:
        shown += f"\nlabel: {example.label}"
    if example.tokens is not None:
        shown = " ".join(f"{t}/{g}" for t, g in zip(example.tokens, example.tags or [], strict=False))
    prompt = (f"{_brief(spec)}\n\nDoes this training example follow the brief (purpose, audience, style, the "
              f"never-do rules)? List every problem.\n\n{shown}")
    reply = llm.structured(prompt, CritiqueReply, system=SYSTEM)
    problems = [i.message for i in issues if i.severity != "info"] + reply.problems
    errors = any(i.severity == "error" for i in issues)
    return Critique(ok=reply.ok and not errors and not reply.problems, problems=problems,
                    suggestion=reply.suggestion or next((i.fix for i in issues), ""), issues=issues)


def augment(examples: Sequence[Example], k: int, llm: StructuredLLM, *, spec: ProjectSpec | None = None,
            rejected: list[tuple[Example | None, str]] | None = None) -> list[Example]:
    """Up to `k` variations of each accepted example (new wording and details, same intent and label)."""
    spec = spec or ProjectSpec()
    pool = _Pool(examples)
    out: list[Example] = []
    for ex in examples:
        if ex.kind == "classification":
            schema: type[DraftBatch] = LabelBatch
            ask = f"Write {k} new texts with the same label ('{ex.label}') as this one, worded differently:\n{ex.text}"
            spec_for = spec.model_copy(update={"labels": spec.labels or [ex.label or ""]})
        elif ex.kind == "ner":
            schema, spec_for = EntityBatch, spec
            ask = f"Write {k} new sentences like this one, with the same kinds of entities:\n{ex.text}"
        else:
            schema, spec_for = ChatBatch, spec
            ask = (f"Write {k} variations of this example: reword the request and change its details, and adapt "
                   f"the answer so it stays correct and in the same style.\n\nRequest: {ex.prompt()}\n\n"
                   f"Answer: {ex.answer()}")
        brief = _brief(spec) + "\n\n" if (spec.purpose or spec.name) else ""
        batch = llm.structured(brief + ask, schema, system=SYSTEM)
        out += _gate(_to_examples(batch, spec_for), pool, rejected)[:k]
    return out
