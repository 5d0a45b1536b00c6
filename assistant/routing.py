"""What a typed message means at the open question: an answer, an offered action, a setting, navigation or a question.

A deterministic parser covers exact labels, numbers, yes/no, "back"/"stop"/"resume", settings in plain words
("use 1 epoch", "learning rate 1e-4", "pick qwen2.5-1.5b") and questions. What it cannot place is given to the
assistant model as one structured-output call onto the same closed set. Text inside the user's data or an uploaded
file never comes here: only what the user typed as a message.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from assistant.slots import DRAFT_TOGETHER, spec_change
from assistant.ui_events import Question

IntentKind = Literal["answer", "setting", "navigate", "question", "status", "unclear", "stale", "file", "outcome",
                     "ended"]
Target = Literal["interview", "dataset", "plan", "evaluate", "deploy", "models", "start_over"]
SETTINGS = ("epochs", "learning_rate", "batch_size", "max_steps", "context", "lora_r", "preset", "base_model")
"""What a user may change by saying it (TrainConfig fields, the preset and the base model)."""


class Intent(TypedDict, total=False):
    """A reply, understood."""

    kind: IntentKind
    value: Any
    """answer: a choice key or the typed text; setting: {name: value}; navigate: a Target; file: {path, name}."""
    text: str
    """The message as typed (for saying back)."""
    by: Literal["click", "parser", "model"]
    """Who decided: a button, the deterministic parser, or the assistant model (which only suggests effects)."""
    partial: bool
    """The parser matched only part of a label: like the model's reading, it only suggests a choice with effects."""


YES = {"yes", "y", "yep", "yeah", "sure", "ok", "okay", "correct", "right", "go", "go ahead", "do it", "please",
       "yes please", "sounds good", "looks right", "looks good", "confirm", "👍"}
NO = {"no", "n", "nope", "not now", "not yet", "cancel", "never mind"}
QUESTION_START = re.compile(r"^(what|why|how|can|could|should|would|is|are|does|do|did|when|where|which|who|explain|"
                            r"tell me)\b", re.I)
NAVIGATION: list[tuple[re.Pattern[str], Target]] = [
    (re.compile(r"\b(start over|start again|from scratch|new (model|project)|another (model|project))\b", re.I),
     "start_over"),
    (re.compile(r"\b(my models|list (the |my )?models|registered models)\b", re.I), "models"),
    (re.compile(r"\b(back to|go to|return to|change|redo|show)\b.*\b(data ?set|examples|data|upload)\b", re.I),
     "dataset"),
    (re.compile(r"\b(back to|go to|return to|redo|change)\b.*\b(interview|project|spec|purpose|audience|style)\b",
                re.I), "interview"),
    (re.compile(r"\b(back to|go to|return to|show)\b.*\b(plan|settings|configur\w*)\b", re.I), "plan"),
    (re.compile(r"\b(back to|go to)\b.*\b(evaluat\w*|comparison|compare)\b", re.I), "evaluate"),
    (re.compile(r"\b(back to|go to)\b.*\b(export|deploy\w*|ollama)\b", re.I), "deploy"),
]
STATUS = re.compile(r"^(where are we|where am i|status|what now|what's next|what next|help|what can i do|"
                    r"what can i say)\W*$", re.I)
NUMBER = r"(\d+(?:\.\d+)?(?:e-?\d+)?)"
SETTING_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"\b{NUMBER}\s*epochs?\b", re.I), "epochs"),
    (re.compile(rf"\bepochs?\s*(?:to|=|:|of)?\s*{NUMBER}\b", re.I), "epochs"),
    (re.compile(rf"\b(?:learning[ _]rate|lr)\s*(?:to|=|:|of)?\s*{NUMBER}", re.I), "learning_rate"),
    (re.compile(rf"\bbatch(?:[ _]size)?\s*(?:to|=|:|of)?\s*{NUMBER}\b", re.I), "batch_size"),
    (re.compile(rf"\b(?:max(?:imum)?[ _])?steps?\s*(?:to|=|:|of)?\s*{NUMBER}\b", re.I), "max_steps"),
    (re.compile(rf"\b{NUMBER}\s*steps\b", re.I), "max_steps"),
    (re.compile(rf"\bcontext(?:[ _](?:length|window|size))?\s*(?:to|=|:|of)?\s*{NUMBER}\b", re.I), "context"),
    (re.compile(rf"\b(?:lora[ _])?(?:rank|lora[ _]r)\s*(?:to|=|:|of)?\s*{NUMBER}\b", re.I), "lora_r"),
    (re.compile(r"\b(documents|communications|balanced)\s+preset\b", re.I), "preset"),
    (re.compile(r"\bpreset\s*(?:to|=|:)?\s*(documents|communications|balanced)\b", re.I), "preset"),
]
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
    from tools.train.catalog import CATALOG

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
        for name in names:
            if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", text.lower()):
                found["base_model"] = name
                break
    if "base_model" not in found:
        m2 = re.search(r"\b(smaller|faster|lighter|bigger|larger|better|stronger)\s+(?:base\s+)?model\b", text, re.I)
        if m2:
            found["base_model"] = SIZE_WORDS[m2.group(1).lower()]
    return found


def parse(text: str, question: Question) -> Intent | None:
    """The deterministic reading of a typed message at `question`; None when it takes the assistant model."""
    t = text.strip()
    base: Intent = {"text": t, "by": "parser"}
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
    setting: Literal["", "epochs", "learning_rate", "batch_size", "max_steps", "context", "lora_r", "preset",
                     "base_model"] = ""
    value: str = Field(default="", max_length=80)
    """For kind=setting: the new value as the user said it (a number, a preset, a model name, 'smaller')."""
    target: Literal["", "interview", "dataset", "plan", "evaluate", "deploy", "models", "start_over"] = ""


def interpretation_prompt(text: str, question: Question) -> str:
    """The prompt that maps a message onto the closed set of what the open question allows."""
    choices = "\n".join(f"- {k}: {v}" for k, v in (question.get("choices") or {}).items()) or "- (none)"
    return (
        "You route one chat message in a fine-tuning wizard. The wizard just asked:\n"
        f"\"{question.get('text', '')[:600]}\"\n\nOffered choices (key: label):\n{choices}\n\n"
        f"The user's message: \"{text[:800]}\"\n\n"
        "Answer with JSON: kind=choice with `choice` set to one offered key when the message picks it; "
        "kind=setting with `setting` and `value` when it changes a training setting (epochs, learning_rate, "
        "batch_size, max_steps, context, lora_r, preset documents|communications|balanced, base_model); "
        "kind=navigate with `target` (interview, dataset, plan, evaluate, deploy, models, start_over) when it asks "
        "to go to another step; kind=question when it asks something; kind=status when it asks where things "
        "stand; otherwise kind=unclear. Never invent a choice key."
    )


TARGET_WORDS: dict[str, tuple[str, ...]] = {
    "interview": ("interview", "project", "spec", "purpose", "audience", "style", "describ", "rules"),
    "dataset": ("data", "example", "upload", "file"), "plan": ("plan", "setting", "configur", "train"),
    "evaluate": ("evaluat", "compar", "score", "test"), "deploy": ("export", "deploy", "ollama", "ship"),
    "models": ("model",), "start_over": ("start", "over", "new", "again", "scratch", "fresh")}
"""Words a message must contain for the model's reading "go to <target>" to be believed."""


def from_interpretation(ip: Interpretation, text: str, question: Question) -> Intent:
    """Check the model's reading against the open question and the message itself: an unknown choice key, a setting
    value the message does not contain, or a step it does not name is 'unclear' (a guess is never acted on)."""
    base: Intent = {"text": text, "by": "model"}
    said = text.lower()
    if ip.kind == "choice":
        if ip.choice in (question.get("choices") or {}):
            return {**base, "kind": "answer", "value": ip.choice}
        return {**base, "kind": "unclear"}
    if ip.kind == "setting" and ip.setting and ip.value and ip.value.lower().strip() in said:
        return {**base, "kind": "setting", "value": {ip.setting: ip.value}}
    if ip.kind == "navigate" and ip.target and any(w in said for w in TARGET_WORDS.get(ip.target, ())):
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
