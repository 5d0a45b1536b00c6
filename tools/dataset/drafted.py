"""The structured-output schemas a drafting call answers in: one batch schema per task type, and the critique."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tools.dataset.model import Issue

# lengths in characters: room for the dataset's own answers (800-1,200 characters), and a bound on a looping model
REQUEST_CHARS = 600
ANSWER_CHARS = 2400


class DraftedChat(BaseModel):
    """A request a user would type and the answer the tuned model should give."""

    model_config = ConfigDict(extra="forbid")
    request: str = Field(description="What the user asks, in their own words.", max_length=REQUEST_CHARS)
    answer: str = Field(description="The ideal answer, in the house style.", max_length=ANSWER_CHARS)


class DraftedLabel(BaseModel):
    """A text and the class it belongs to."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="A realistic input text.", max_length=ANSWER_CHARS)
    label: str = Field(description="Its class, exactly one of the allowed labels.", max_length=80)


class DraftedEntity(BaseModel):
    """One entity mention, copied exactly from the text."""

    model_config = ConfigDict(extra="forbid")
    mention: str = Field(description="The exact words from the text.", max_length=120)
    label: str = Field(description="The entity type.", max_length=80)


class DraftedEntities(BaseModel):
    """A text and the entities in it."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=ANSWER_CHARS)
    entities: list[DraftedEntity] = Field(default_factory=list, json_schema_extra={"maxItems": 12})


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
