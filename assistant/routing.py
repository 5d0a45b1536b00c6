"""What a typed message means at the open question: an answer, an offered action, a setting, navigation or a question.

A deterministic parser covers exact labels, numbers, yes/no, "back"/"stop"/"resume", settings in plain words
("use 1 epoch", "learning rate 1e-4", "pick qwen2.5-1.5b") and questions. What it cannot place is given to the
assistant model as one structured-output call onto the same closed set. Text inside the user's data or an uploaded
file never comes here: only what the user typed as a message.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Required, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from assistant.slots import DRAFT_TOGETHER, spec_change
from assistant.ui_events import Question
from tools.vocabulary import DESTINATIONS, TARGETS, SettingName, Target, setting_patterns, settings_in_words


class _Reply(TypedDict, total=False):
    """What every reply understood carries, whatever its kind."""

    text: str
    """The message as typed (for saying back)."""
    by: Literal["click", "parser", "model"]
    """Who decided: a button, the deterministic parser, or the assistant model (which only suggests effects)."""


class AnswerIntent(_Reply, total=False):
    """An answer to the open question."""

    kind: Required[Literal["answer"]]
    value: Required[str | dict[str, str]]
    """A choice key or the typed text; at the project's confirmation a typed change ({"slot", "text"})."""
    partial: bool
    """The parser matched only part of a label: like the model's reading, it only suggests a choice with effects."""


class SettingIntent(_Reply):
    """Settings said in words or changed in the settings panel."""

    kind: Required[Literal["setting"]]
    value: Required[dict[str, str]]
    """Setting name → the value as said ({"epochs": "1"}, {"base_model": "smaller"})."""


class NavigateIntent(_Reply):
    """A step to go to."""

    kind: Required[Literal["navigate"]]
    value: Required[Target | Literal["back"]]


class FileIntent(_Reply):
    """A file sent with the chat."""

    kind: Required[Literal["file"]]
    value: Required[dict[str, Any]]
    """The upload: {path, name, …}."""


class OutcomeIntent(_Reply):
    """How a watched training run ended."""

    kind: Required[Literal["outcome"]]
    value: Required[dict[str, Any]]
    """tools.jobs.run_outcome's answer: status, step, message, fix …"""


class EndedIntent(_Reply):
    """The live view saw a training run end: the graph reads how (tools.jobs.run_outcome)."""

    kind: Required[Literal["ended"]]
    value: Required[str]
    """The run folder."""


class PlainIntent(_Reply):
    """A reply that carries nothing more than its kind: a question, 'where are we', unclear, or a stale button."""

    kind: Required[Literal["question", "status", "unclear", "stale"]]


Intent = AnswerIntent | SettingIntent | NavigateIntent | FileIntent | OutcomeIntent | EndedIntent | PlainIntent
"""A reply, understood: one shape per kind."""


YES = {"yes", "y", "yep", "yeah", "sure", "ok", "okay", "correct", "right", "go", "go ahead", "do it", "please",
       "yes please", "sounds good", "looks right", "looks good", "confirm", "👍"}
NO = {"no", "n", "nope", "not now", "not yet", "cancel", "never mind"}
QUESTION_START = re.compile(r"^(what|why|how|can|could|should|would|is|are|does|do|did|when|where|which|who|explain|"
                            r"tell me)\b", re.I)
NAVIGATION: list[tuple[re.Pattern[str], Target]] = [(re.compile(d.phrase, re.I), target)
                                                  for target, d in DESTINATIONS.items()]
STATUS = re.compile(r"^(where are we|where am i|status|what now|what's next|what next|help|what can i do|"
                    r"what can i say)\W*$", re.I)
SETTING_PATTERNS: list[tuple[re.Pattern[str], SettingName]] = [(re.compile(p, re.I), name)
                                                             for p, name in setting_patterns()]
MODEL_VERB = re.compile(r"\b(?:use|pick|choose|switch to|train on|try|with|base(?: model)?(?: to| =|:)?)\s+"
                        r"([\w./:-]+)", re.I)
MODEL_PATH = re.compile(r"(?:\bmodel\s+(?:in|at|from)|\b(?:use|pick|choose|train on|base(?: model)?(?: to| =|:)?))"
                        r"\s+(?:the\s+(?:model|folder|file)\s+(?:in|at)\s+)?(?P<path>(?:~|\.{1,2}/|/)\S*|\S+\.gguf)",
                        re.I)
"""'use the model in /tmp/x', 'train on ~/models/phi.gguf': a base on this machine, named by its path."""
SIZE_WORDS = {"smaller": "smaller", "faster": "smaller", "lighter": "smaller", "bigger": "bigger", "larger": "bigger",
              "better": "bigger", "stronger": "bigger"}


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower().strip(" .!"))


def match_choice(text: str, choices: dict[str, str]) -> str:
    """The key of the choice a typed text names exactly (its key or its label); "" if none."""
    t = _norm(text)
    if not t:
        return ""
    for key, label in choices.items():
        if t in (key.lower(), _norm(label)):
            return key
    return ""


def partial_choice(text: str, choices: dict[str, str]) -> str:
    """The one choice whose label contains the typed text (three letters or more); "" if none or several."""
    t = _norm(text)
    hits = [k for k, v in choices.items() if t in _norm(v)] if len(t) >= 3 else []
    return hits[0] if len(hits) == 1 else ""


def is_question(text: str) -> bool:
    """A question to answer rather than an answer: it ends with '?' or starts like one."""
    t = text.strip()
    return t.endswith("?") or bool(QUESTION_START.match(t))


def _model_names() -> list[str]:
    from tools.models.catalog import CATALOG

    names = []
    for entry in CATALOG.values():
        names += [entry.key.lower(), *([entry.ollama_tag.lower()] if entry.ollama_tag else [])]
    return names


def find_setting(text: str) -> dict[str, Any]:
    """Settings named in plain words: {"epochs": "1"}, {"base_model": "qwen2.5-1.5b"}, {"base_model": "smaller"}."""
    found: dict[str, Any] = {}
    for pattern, name in SETTING_PATTERNS:
        m = pattern.search(text)
        if m and name not in found:
            found[name] = m.group(1).lower()
    on_disk = MODEL_PATH.search(text)
    if on_disk:
        found["base_model"] = on_disk.group("path").rstrip(".,;")  # a path keeps its case
        return found
    m = MODEL_VERB.search(text)
    names = _model_names()
    if m and m.group(1).lower().strip(".,") in names:
        found["base_model"] = m.group(1).lower().strip(".,")
    else:
        for known in names:
            if re.search(rf"(?<![\w.-]){re.escape(known)}(?![\w.-])", text.lower()):
                found["base_model"] = known
                break
    if "base_model" not in found:
        m2 = re.search(r"\b(smaller|faster|lighter|bigger|larger|better|stronger)\s+(?:base\s+)?model\b", text, re.I)
        if m2:
            found["base_model"] = SIZE_WORDS[m2.group(1).lower()]
    return found


def parse(text: str, question: Question) -> Intent | None:
    """The deterministic reading of a typed message at `question`; None when it takes the assistant model."""
    t = text.strip()
    base: _Reply = {"text": t, "by": "parser"}
    if not t:
        return {**base, "kind": "unclear"}
    choices = question.get("choices") or {}
    key = match_choice(t, choices) or str((question.get("aliases") or {}).get(_norm(t), ""))
    if key:
        return {**base, "kind": "answer", "value": key}
    if question.get("kind") == "confirm":
        # at the project's confirmation a typed change is the change itself, not a way back to the interview
        change = spec_change(t)
        if change:
            return {**base, "kind": "answer", "value": change}
        if DRAFT_TOGETHER.search(t) and "confirm" in choices:
            return {**base, "kind": "answer", "value": "draft"}
    # where the typed words are the answer (the interview), a few of a starter's words never stand for all of it
    key = "" if question.get("free_text") and question.get("slot") else partial_choice(t, choices)
    if key:
        # "ain" is in "Start training": a part of a label may pick a harmless choice, never start or delete anything
        return {**base, "kind": "answer", "value": key, "partial": True}
    if question.get("optional") and _norm(t) in {"skip", "none", "nothing", "no", "n/a", "-"}:
        return {**base, "kind": "answer", "value": ""}
    if question.get("verbatim"):
        return {**base, "kind": "answer", "value": t}
    if STATUS.match(t):
        return {**base, "kind": "status"}
    for pattern, target in NAVIGATION:
        if pattern.search(t) and not question.get("free_text"):
            return {**base, "kind": "navigate", "value": target}
    if _norm(t) in ("back", "go back"):
        return {**base, "kind": "navigate", "value": "back"}
    if is_question(t):
        return {**base, "kind": "question"}
    if question.get("free_text"):
        return {**base, "kind": "answer", "value": t}
    yes_key = next((k for k in ("yes", "confirm", "start", "continue", "again", "resume") if k in choices), "")
    if _norm(t) in YES and yes_key:
        return {**base, "kind": "answer", "value": yes_key}
    no_key = next((k for k in ("no", "edit", "skip", "not_now", "done") if k in choices), "")
    if _norm(t) in NO and no_key:
        return {**base, "kind": "answer", "value": no_key}
    if choices and all(k.isdigit() for k in choices):
        digits = [d for d in re.findall(r"\b\d\b", t) if d in choices]
        if len(digits) == 1:
            return {**base, "kind": "answer", "value": digits[0]}
    settings = find_setting(t)
    if settings:
        return {**base, "kind": "setting", "value": settings}
    return None


class Interpretation(BaseModel):
    """The assistant model's reading of one message (structured output onto a closed set)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["choice", "setting", "navigate", "question", "status", "unclear"]
    # short fields: a choice key or a setting's value is a word or two, and a bound keeps a looping model brief
    choice: str = Field(default="", max_length=40)
    """For kind=choice: the key of the offered choice the message means."""
    setting: Literal["", SettingName] = ""
    value: str = Field(default="", max_length=80)
    """For kind=setting: the new value as the user said it (a number, a preset, a model name, 'smaller')."""
    target: Literal["", Target] = ""


def interpretation_prompt(text: str, question: Question) -> str:
    """The prompt that maps a message onto the closed set of what the open question allows."""
    choices = "\n".join(f"- {k}: {v}" for k, v in (question.get("choices") or {}).items()) or "- (none)"
    return (
        "You route one chat message in a fine-tuning wizard. The wizard just asked:\n"
        f"\"{question.get('text', '')[:600]}\"\n\nOffered choices (key: label):\n{choices}\n\n"
        f"The user's message: \"{text[:800]}\"\n\n"
        "Answer with JSON: kind=choice with `choice` set to one offered key when the message picks it; "
        f"kind=setting with `setting` and `value` when it changes a training setting ({settings_in_words()}); "
        f"kind=navigate with `target` ({', '.join(TARGETS)}) when it asks to go to another step; "
        "kind=question when it asks something; kind=status when it asks where things stand; otherwise kind=unclear. "
        "Never invent a choice key."
    )


def from_interpretation(ip: Interpretation, text: str, question: Question) -> Intent:
    """Check the model's reading against the open question and the message itself: an unknown choice key, a setting
    value the message does not contain, or a step it does not name is 'unclear' (a guess is never acted on)."""
    base: _Reply = {"text": text, "by": "model"}
    said = text.lower()
    if ip.kind == "choice":
        if ip.choice in (question.get("choices") or {}):
            return {**base, "kind": "answer", "value": ip.choice}
        return {**base, "kind": "unclear"}
    if ip.kind == "setting" and ip.setting and ip.value and ip.value.lower().strip() in said:
        return {**base, "kind": "setting", "value": {ip.setting: ip.value}}
    if ip.kind == "navigate" and ip.target and any(w in said for w in DESTINATIONS[ip.target].words):
        return {**base, "kind": "navigate", "value": ip.target}
    if ip.kind in ("question", "status"):
        return {**base, "kind": ip.kind}
    return {**base, "kind": "unclear"}


def from_click(reply: dict[str, Any], question: Question) -> Intent:
    """A button: it answers only the question it was shown with."""
    if reply.get("qid") != question.get("id"):
        return {"kind": "stale", "text": str(reply.get("label", "")), "by": "click"}
    value = str(reply.get("value", ""))
    if value == "skip" and question.get("optional"):
        value = ""
    return {"kind": "answer", "value": value, "text": str(reply.get("label", value)), "by": "click"}
