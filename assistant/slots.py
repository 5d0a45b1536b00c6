"""What one interview answer fills: the assistant model's reading of it, accepted only when it answers its own question
in the user's words; otherwise the answer as the user typed it.

The model is asked about the one slot the question was about (a small model given a whole spec to fill copies the
sentence into every field). Its value is a proposal: it must not loop, copy the question or its example, repeat
another slot, or bring words the user never said; a list (labels, entity types) must list what the user listed.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from tools import sense
from tools.project import ProjectSpec, split_items

GROUNDED = 0.5
"""The share of a model's value that must be the user's own words."""
MAX_ITEM_CHARS = 60

Item = Annotated[str, Field(max_length=MAX_ITEM_CHARS)]


class _Slot(BaseModel):
    # fields the model adds beyond the one asked are dropped, never stored
    model_config = ConfigDict(extra="ignore", json_schema_extra={"additionalProperties": False})


class PurposeAnswer(_Slot):
    """What the model is for."""

    purpose: str = Field(default="", max_length=300, description="What the model does, in the user's words.")


class AudienceAnswer(_Slot):
    """Who reads the model's output."""

    audience: str = Field(default="", max_length=200, description="Who reads the output, in the user's words.")


class StyleAnswer(_Slot):
    """The house style."""

    house_style: str = Field(default="", max_length=300, description="Tone, structure, length, in the user's words.")


class LabelsAnswer(_Slot):
    """The classes a classifier picks from."""

    labels: list[Item] = Field(default_factory=list, max_length=20, description="Each label the user listed.")


class EntitiesAnswer(_Slot):
    """The kinds of entity to find."""

    entity_types: list[Item] = Field(default_factory=list, max_length=20,
                                     description="Each kind of entity the user listed.")


SCHEMAS: dict[str, type[_Slot]] = {"purpose": PurposeAnswer, "audience": AudienceAnswer, "house_style": StyleAnswer,
                                   "labels": LabelsAnswer, "entity_types": EntitiesAnswer}
"""The slots the assistant model reads; the others (kind, samples, rules, name) are taken as typed."""


def prompt(slot: str, question: str, answer: str) -> str:
    """The one-slot question for the assistant model."""
    field = slot.replace("_", " ")
    listing = "a list of the items the user named" if slot in ("labels", "entity_types") else "a short phrase"
    return (f"The wizard asked: \"{question}\"\nThe user answered: \"{answer}\"\n\n"
            f"Give the {field} this answer states, as {listing}, keeping the user's own words. "
            f"If the answer does not state it, leave it empty.")


def example_of(question: str) -> str:
    """The example a question gives ("— for example “…”"), which a small model likes to copy."""
    start, end = question.find("“"), question.rfind("”")
    return question[start + 1:end] if 0 <= start < end else ""


def problem(slot: str, value: Any, answer: str, question: str, spec: ProjectSpec) -> str:
    """Why the model's value for `slot` cannot be stored, in plain words; "" when it can."""
    if slot in ("labels", "entity_types"):
        items = [str(v).strip() for v in value or [] if str(v).strip()]
        if not items:
            return "it listed nothing"
        if len({i.lower() for i in items}) < len(items):
            return "it listed the same item twice"
        for item in items:
            why = sense.nonsense(item) or ("it named something you did not list"
                                           if sense.grounded(item, answer) < GROUNDED else "")
            if why:
                return why
        return "a classifier needs at least two labels" if slot == "labels" and len(items) < 2 else ""
    text = str(value or "").strip()
    why = sense.nonsense(text, prompt=question, examples=(example_of(question),))
    if why and not (why.startswith("it copied") and sense.copies(answer, text)):
        return why
    if sense.grounded(text, answer) < GROUNDED:
        return "it used words you did not say"
    for other in ("purpose", "audience", "house_style"):
        filled = str(getattr(spec, other) or "")
        if other != slot and filled and sense.same_text(text, filled) and not sense.same_text(answer, filled):
            return f"it repeated your {other.replace('_', ' ')}"
    return ""


def as_typed(slot: str, answer: str) -> Any:
    """The answer as the user typed it, for the slot: a list for labels and entity types."""
    return split_items(answer) if slot in ("labels", "entity_types") else answer.strip()


FIELD_WORDS = {"name": "name", "project name": "name", "title": "name", "purpose": "purpose", "goal": "purpose",
               "what it does": "purpose", "audience": "audience", "readers": "audience", "reader": "audience",
               "house style": "house_style", "style": "house_style", "tone": "house_style",
               "never-do rules": "never_do", "never do rules": "never_do", "rules": "never_do",
               "never-do rule": "never_do", "labels": "labels", "entities": "entity_types",
               "entity types": "entity_types"}
_CHANGE = re.compile(r"^(?:please\s+)?(?:change|set|make|update|edit|replace)\s+(?:the\s+|my\s+|its\s+)?"
                     rf"(?P<field>{'|'.join(sorted(map(re.escape, FIELD_WORDS), key=len, reverse=True))})"
                     r"\s*(?:to\s*:?|:|=|into|with|should be|is)\s*(?P<value>\S.*)$", re.I | re.S)
DRAFT_TOGETHER = re.compile(r"\b(draft|write|make|create)\b.*\b(examples?|drafts?|data ?set)\b", re.I)
"""'let's draft some examples together': at the confirmation, a yes that goes straight to drafting."""


def spec_change(text: str) -> dict[str, str] | None:
    """'change the house style to: short bullets' typed at the confirmation: {"slot", "text"}, or None."""
    m = _CHANGE.match(text.strip())
    if not m:
        return None
    return {"slot": FIELD_WORDS[m.group("field").lower()], "text": m.group("value").strip().strip("\"“”")}
