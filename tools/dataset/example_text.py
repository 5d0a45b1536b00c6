"""An example as text to edit in the chat, and the edited text back as a checked example."""

from __future__ import annotations

import re
from typing import Any, Literal

from tools.dataset.model import Example, Issue, Message
from tools.dataset.readers import bio_from_spans
from tools.dataset.rows import row_issues
from tools.dataset.spans import bio_spans
from tools.errors import UsageError

_ROLE_LINE = re.compile(r"^(system|user|assistant)\s*:\s?(.*)$", re.IGNORECASE)
_FIELD_LINE = re.compile(r"^(text|label|entities)\s*:\s?(.*)$", re.IGNORECASE)


def example_to_text(ex: Example) -> str:
    """The example as editable text: 'User: … / Assistant: …', 'Text: … / Label: …' or 'Text: … / Entities: …'."""
    if ex.kind == "classification":
        return f"Text: {ex.text}\nLabel: {ex.label}"
    if ex.kind == "ner":
        tokens = ex.tokens or []
        spans = sorted(bio_spans(ex.tags or []))
        ents = "; ".join(f"{' '.join(tokens[s:e])} = {t}" for s, e, t in spans)
        return f"Text: {ex.text}\nEntities: {ents}"
    return "\n\n".join(f"{m.role.capitalize()}: {m.content}" for m in ex.messages)


def parse_example_text(text: str, kind: Literal["chat", "classification", "ner"] = "chat") -> Example:
    """The edited text back as an example, checked; a UsageError names the line and what is wrong.

    `kind` is the kind of the example being edited (Example.kind): a classifier row is edited as
    'Text: …' and 'Label: …', an entity row as 'Text: …' and 'Entities: Ana = PERSON; Acme = ORG'.
    """
    if not text.strip():
        raise UsageError("The edited example is empty.", "Write the example, or drop it instead of editing.")
    ex = _parse_chat(text) if kind == "chat" else _parse_fields(text, kind)
    errors = [i for i in row_issues(ex) if i.severity == "error"]
    if errors:
        raise UsageError(errors[0].message.replace("An example", "The edited example"), _edit_fix(errors[0], kind))
    return ex


_EDIT_FIXES = {
    "no_assistant": "Add a line that starts with 'Assistant:' followed by the answer.",
    "role_order": "Write a 'User:' line with the request, then an 'Assistant:' line with its answer, and end with "
                  "the answer.",
    "empty_field": "Write the text after each label, or remove the label that has none.",
}


def _edit_fix(issue: Issue, kind: str) -> str:
    """The fix for an edited example in the chat's own terms (labels to write), not a file format's or a flag's."""
    if kind == "chat" and issue.code in _EDIT_FIXES:
        return _EDIT_FIXES[issue.code]
    return re.sub(r";?\s*--fix [^.;]*[.;]?", ".", issue.fix).replace("..", ".").strip()


def _parse_chat(text: str) -> Example:
    turns: list[tuple[str, list[str]]] = []
    for n, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        hit = _ROLE_LINE.match(line.strip()) if not line[:1].isspace() else None
        if hit:
            turns.append((hit.group(1).lower(), [hit.group(2)]))
        elif turns:
            turns[-1][1].append(line)
        elif line.strip():
            raise UsageError(f"Line {n} ('{line.strip()[:40]}') comes before any 'User:' or 'Assistant:' label.",
                             "Start the example with 'User:' followed by the request, then 'Assistant:' and the "
                             "answer.")
    messages = [Message.model_validate({"role": role, "content": "\n".join(lines).strip()}) for role, lines in turns]
    return Example(messages=messages)


def _parse_fields(text: str, kind: str) -> Example:
    fields: dict[str, list[str]] = {}
    current = ""
    for n, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        hit = _FIELD_LINE.match(line.strip())
        if hit:
            current = hit.group(1).lower()
            fields[current] = [hit.group(2)]
        elif current:
            fields[current].append(line)
        elif line.strip():
            raise UsageError(f"Line {n} ('{line.strip()[:40]}') comes before the 'Text:' label.",
                             "Start with 'Text:' followed by the text.")
    body = "\n".join(fields.get("text", [])).strip()
    if not body:
        raise UsageError("The edited example has no 'Text:' line (or the text after it is empty).",
                         "Write 'Text:' followed by the text.")
    if kind == "classification":
        label = " ".join(fields.get("label", [])).strip()
        if not label:
            raise UsageError("The edited example has no 'Label:' line (or the label is empty).",
                             "Write 'Label:' followed by one of the project's labels.")
        return Example.classified(body, label)
    spans: list[dict[str, Any]] = []
    cursor = 0
    for item in filter(None, (e.strip() for e in " ".join(fields.get("entities", [])).split(";"))):
        mention, eq, label = (part.strip() for part in item.rpartition("="))
        if not eq or not mention or not label:
            raise UsageError(f"The entity '{item}' is not written as 'words = TYPE'.",
                             "List entities as 'Ana = PERSON; Acme Corp = ORG'.")
        start = body.find(mention, cursor)
        if start < 0:
            raise UsageError(f"The entity '{mention}' does not appear in the text (after the entities before it).",
                             "Copy the words exactly from the text, in the order they appear.")
        spans.append({"start": start, "end": start + len(mention), "label": label})
        cursor = start + len(mention)
    issues: list[Issue] = []
    ex = bio_from_spans(body, spans, "entities", None, issues)
    if ex is None:
        raise UsageError(issues[0].message, issues[0].fix)
    return ex
