"""Draft, critique and vary examples from a project spec through structured LLM output; only clean ones are offered."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from pydantic import BaseModel, Field, create_model

from tools import sense
from tools.dataset.checks import NEAR_DUP_THRESHOLD, fingerprint, privacy_issues, row_issues, signature
from tools.dataset.drafted import (
    ChatBatch,
    Critique,
    CritiqueReply,
    DraftBatch,
    DraftedChat,
    DraftedEntities,
    DraftedLabel,
    EntityBatch,
    LabelBatch,
)
from tools.dataset.example_text import example_to_text
from tools.dataset.model import Example, Issue, Message
from tools.dataset.readers import bio_from_spans
from tools.errors import LLMTimeout, StructuredOutputError, UsageError
from tools.llm_protocol import StructuredLLM
from tools.project import ProjectSpec

BATCH = 5
FIRST_BATCH = 2
"""Drafts asked for in one call at first; fewer tokens per call, so a slow model shows progress sooner."""
MAX_ROUNDS = 3
SHOWN_EXISTING = 8


# ---------------------------------------------------------------- prompts

SYSTEM = ("You write training examples for a fine-tuned model. Follow the project brief exactly, write like a "
          "real person, and answer only with the requested JSON.")


def project_brief(spec: ProjectSpec) -> str:
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


def _draft_prompt(spec: ProjectSpec, k: int, existing: Sequence[Example], focus: str = "",
                  turned_away: Sequence[str] = ()) -> str:
    kind = {"classification": "labelled texts", "entity_extraction": "texts with their entities"}.get(
        spec.task_type or "", "request / answer pairs")
    if k == 1:
        kind = kind.replace("texts", "text").replace("pairs", "pair")
    avoid = "\n".join(f"- {ex.prompt()[:160]}" for ex in list(existing)[-SHOWN_EXISTING:])
    why = "; ".join(dict.fromkeys(turned_away))
    return (f"{project_brief(spec)}\n\nWrite {k} new {kind}."
            + (f" Every one of them is of this kind: {focus}" if focus else "")
            + " Make each one different in topic and wording from the others"
            + (f" and from these existing ones:\n{avoid}" if avoid else ".")
            + "\nAnswers must be complete, follow the house style and never do what the brief forbids."
            + (f"\nEarlier drafts were turned away ({why}): write different ones." if why else ""))


# ---------------------------------------------------------------- conversion and gating


def to_examples(batch: DraftBatch, spec: ProjectSpec) -> list[Example | str]:
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


class Pool:
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


def gate(candidates: list[Example | str], pool: Pool, rejected: list[tuple[Example | None, str]] | None,
          *, prompt: str = "", spec: ProjectSpec | None = None) -> list[Example]:
    accepted = []
    for cand in candidates:
        if isinstance(cand, str):
            reason: str | None = cand
        else:
            errors = [i for i in format_issues(cand) if i.severity == "error"]
            reason = errors[0].message if errors else nonsense(cand, prompt, spec) or pool.why_not(cand)
        if reason is None and not isinstance(cand, str):
            pool.add(cand)
            accepted.append(cand)
        elif rejected is not None:
            rejected.append((None if isinstance(cand, str) else cand, reason or ""))
    return accepted


def nonsense(ex: Example, prompt: str = "", spec: ProjectSpec | None = None) -> str | None:
    """Why a well-formed draft still makes no sense as an example, or None: its text loops, its answer repeats its
    request, it echoes the instructions it was written from, or it copies one of the user's own samples."""
    texts = [m.content for m in ex.messages] or [ex.text or ""]
    samples = tuple(spec.samples) if spec is not None else ()
    for text in texts:
        why = sense.nonsense(text, prompt=prompt, examples=samples)
        if why:
            return f"the draft made no sense: {why}"
    if ex.kind == "chat" and sense.same_text(ex.prompt(), ex.answer()):
        return "the draft made no sense: its answer only repeats the request"
    return None


def _batch_schema(spec: ProjectSpec, k: int = BATCH) -> type[DraftBatch]:
    """The batch schema for `k` items: constrained decoding writes no more than it asks for, and the answer's token
    budget is sized to them."""
    base: type[DraftBatch] = ChatBatch
    if spec.task_type == "classification":
        base = LabelBatch
    elif spec.task_type == "entity_extraction":
        base = EntityBatch
    return sized(base, k)


@cache
def sized(base: type[DraftBatch], k: int) -> type[DraftBatch]:
    item: Any = base.model_fields["examples"].annotation
    sized: type[DraftBatch] = create_model(base.__name__, __base__=base, __doc__=base.__doc__,
                                           examples=(item, Field(json_schema_extra={"maxItems": k, "minItems": 1})))
    return sized


# ---------------------------------------------------------------- the three operations


def draft_examples(spec: ProjectSpec, n: int, llm: StructuredLLM, *, existing: Sequence[Example] = (),
                   rejected: list[tuple[Example | None, str]] | None = None, focus: str = "",
                   deadline: float | None = None, progress: Callable[[int, int], None] | None = None
                   ) -> list[Example]:
    """Up to `n` new examples written from the spec; each passed the checks and is no near-copy of another.

    Asks in batches of up to 2, for at most 3 rounds per 5 examples needed; a batch that fails (too slow, looping,
    the wrong shape, nothing usable) makes the next calls ask for one example each. Fewer drafts come back, never
    unchecked ones; `rejected` collects what was turned away and why. `focus` narrows what to write (a category's
    description, e.g. from tools/dataset/categories.py). No new call starts after `deadline` (time.monotonic());
    `progress(done, n)` follows the drafts kept. StructuredOutputError when not one call gave a usable draft.
    """
    pool = Pool(existing)
    accepted: list[Example] = []
    rounds = MAX_ROUNDS * max(1, -(-n // BATCH))
    size = FIRST_BATCH
    failure: StructuredOutputError | LLMTimeout | None = None
    turned_away: list[str] = []
    for _ in range(rounds):
        if len(accepted) >= n or (deadline is not None and time.monotonic() > deadline):
            break
        k = min(size, n - len(accepted))
        # greedy decoding answers the same prompt the same way: what was turned away goes into the next one
        prompt = _draft_prompt(spec, k, [*existing, *accepted], focus, turned_away[-3:])
        try:
            batch = llm.structured(prompt, _batch_schema(spec, k), system=SYSTEM)
        except (StructuredOutputError, LLMTimeout) as exc:
            failure, size = exc, 1  # a weak or busy model: one example per call from now on
            turned_away.append("too long or repetitive")
            continue
        out: list[tuple[Example | None, str]] = []
        kept = gate(to_examples(batch, spec), pool, out, prompt=_draft_prompt(spec, k, [], focus), spec=spec)
        kept = kept[: n - len(accepted)]
        turned_away += [reason.split(":")[0] for _, reason in out]
        if rejected is not None:
            rejected += out
        if not kept:
            size = 1
        accepted += kept
        if progress is not None:
            progress(len(accepted), n)
    if not accepted and failure is not None:
        raise WeakModel(f"{getattr(llm, 'model', 'The assistant model')} did not write usable examples "
                        f"({_plain(failure)}).", "Try again, or use a bigger assistant model.")
    return accepted


def _plain(exc: StructuredOutputError | LLMTimeout) -> str:
    """What went wrong with the assistant model's answer, as a clause: "it repeated itself", "it took too long"."""
    if isinstance(exc, LLMTimeout):
        return "it took too long"
    text = exc.message.lower()
    if "repeating" in text:
        return "it repeated itself"
    if "length" in text:
        return "it went on past the length a draft needs"
    return "its answer was in the wrong shape"


class WeakModel(StructuredOutputError):
    """The assistant model could not write a single usable draft: a bigger one would."""

    code = "weak_model"


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
    prompt = (f"{project_brief(spec)}\n\nDoes this training example follow the brief (purpose, audience, style, the "
              f"never-do rules)? List every problem.\n\n{shown}")
    reply = llm.structured(prompt, CritiqueReply, system=SYSTEM)
    problems = [i.message for i in issues if i.severity != "info"] + reply.problems
    errors = any(i.severity == "error" for i in issues)
    return Critique(ok=reply.ok and not errors and not reply.problems, problems=problems,
                    suggestion=reply.suggestion or next((i.fix for i in issues), ""), issues=issues)


def augment(examples: Sequence[Example], k: int, llm: StructuredLLM, *, spec: ProjectSpec | None = None,
            rejected: list[tuple[Example | None, str]] | None = None, existing: Sequence[Example] = ()
            ) -> list[Example]:
    """Up to `k` variations of each accepted example (new wording and details, same intent and label).

    Variations that copy `examples` or any of `existing` (the rest of the dataset) are turned away.
    """
    spec = spec or ProjectSpec()
    pool = Pool([*existing, *examples])
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
        brief = project_brief(spec) + "\n\n" if (spec.purpose or spec.name) else ""
        batch = llm.structured(brief + ask, sized(schema, k), system=SYSTEM)
        out += gate(to_examples(batch, spec_for), pool, rejected, prompt=brief, spec=spec)[:k]
    return out


def more_like_this(example: Example, n: int, spec: ProjectSpec, llm: StructuredLLM, *,
                   existing: Sequence[Example] = (), rejected: list[tuple[Example | None, str]] | None = None
                   ) -> list[Example]:
    """Up to `n` new drafts like `example` (same kind of request and label), none a copy of the dataset."""
    return augment([example], n, llm, spec=spec, rejected=rejected, existing=existing)


# ---------------------------------------------------------------- rewrite by instruction


def _last_pair(ex: Example) -> tuple[list[Message], str, str]:
    """The turns before the last request, the last request and its answer (what a rewrite changes)."""
    user = max((i for i, m in enumerate(ex.messages) if m.role == "user"), default=None)
    if user is None:
        raise UsageError("This example has no user turn to rewrite.", "Edit it instead, starting with 'User:'.")
    return ex.messages[:user], ex.messages[user].content, ex.answer()


def _shown(ex: Example) -> str:
    """The example as the model (and the user) reads it."""
    if ex.kind == "chat":
        _, request, answer = _last_pair(ex)
        return f"Request: {request}\n\nAnswer: {answer}"
    return example_to_text(ex)


def rewrite(example: Example, instruction: str, spec: ProjectSpec, llm: StructuredLLM, *,
            existing: Sequence[Example] = ()) -> Example:
    """`example` rewritten as the user asked ("shorter", "more formal", "make the persona an admin").

    The result passes the same checks as any draft and copies no other example in `existing` (the original
    itself may be in it); a system prompt and earlier turns are kept. Raises StructuredOutputError with the
    reason when three tries give nothing usable.
    """
    if not instruction.strip():
        raise UsageError("Say how to rewrite the example.", "For example: 'shorter', 'more formal', "
                                                             "'make the persona an admin'.")
    original = fingerprint(example)
    pool = Pool([ex for ex in existing if fingerprint(ex) != original])
    schemas: dict[str, type[BaseModel]] = {"classification": DraftedLabel, "ner": DraftedEntities, "chat": DraftedChat}
    schema = schemas[example.kind]
    brief = project_brief(spec) + "\n\n" if (spec.purpose or spec.name) else ""
    prompt = (f"{brief}Rewrite this training example as the user asks: {instruction.strip()}\n"
              f"Change only what the instruction asks for; keep it correct, complete and in the house style."
              f"\n\n{_shown(example)}")
    spec_for = spec.model_copy(update={"labels": spec.labels or ([example.label] if example.label else [])})
    reason = ""
    for _ in range(MAX_ROUNDS):
        # the same prompt gets the same answer from a greedy model: say why the last one was turned away
        asked = prompt + (f"\n\nYour last rewrite was turned away ({reason}): do it differently." if reason else "")
        try:
            item: BaseModel = llm.structured(asked, schema, system=SYSTEM)
        except (StructuredOutputError, LLMTimeout) as exc:
            # a loop, a cut-off or a timeout comes back the same way on the next try: say so now
            reason = _plain(exc)
            break
        cand = _to_example(item, spec_for)
        if isinstance(cand, Example) and example.kind == "chat":
            prefix, _, _ = _last_pair(example)
            cand = Example(messages=[*prefix, *cand.messages])
        if isinstance(cand, str):
            reason = cand
            continue
        errors = [i for i in format_issues(cand) if i.severity == "error"]
        if errors:
            reason = errors[0].message
        elif nonsense(cand, spec=spec):
            reason = str(nonsense(cand, spec=spec))
        elif fingerprint(cand) == original:
            reason = "the rewrite came back unchanged"
        else:
            reason = pool.why_not(cand) or ""
        if not reason:
            return cand
    raise StructuredOutputError(f"The assistant could not rewrite this example as asked ({reason}).",
                                "Try a more specific instruction, or edit the example yourself.")
