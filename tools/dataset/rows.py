"""Checks of one row at a time: empty fields, role order, tool calls, labels, tags, unfilled template placeholders."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from tools.dataset.model import Example, Issue, Severity

# {{name}} (Jinja, Handlebars) or {name} (Python format strings) left where a value should have been filled in
_PLACEHOLDER = re.compile(r"\{\{\s*[A-Za-z_][\w.]*\s*\}\}|(?<![{\w$])\{[A-Za-z_]\w*\}(?!\})")
# code shows braces on purpose: fenced blocks and `inline code` are not searched
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.S)


def make_issue(code: str, severity: Severity, line: int | None, message: str, fix: str) -> Issue:
    """An Issue from plain arguments."""
    return Issue(code=code, severity=severity, line=line, message=message, fix=fix)


def at(ex: Example) -> str:
    """How a message names the row: 'Line 12', or 'An example' for rows made in memory."""
    return f"Line {ex.line}" if ex.line is not None else "An example"


def row_issues(ex: Example) -> list[Issue]:
    """Structural problems of one row: empty fields, role order, no answer, tag/token mismatches."""
    if ex.kind == "ner":
        return _ner_issues(ex)
    if ex.kind == "classification":
        return _classification_issues(ex)
    return _chat_issues(ex)


def _chat_issues(ex: Example) -> list[Issue]:
    where = at(ex)
    out: list[Issue] = []
    if not ex.messages:
        return [make_issue("empty_field", "error", ex.line, f"{where} has an empty conversation (no messages).",
                           "Add a user turn and an assistant answer, or delete the line; --fix drops it.")]
    for i, m in enumerate(ex.messages, start=1):
        if not m.content.strip() and not m.tool_calls:
            out.append(make_issue("empty_field", "error", ex.line, f"{where}, message {i} ({m.role}) has no text.",
                                  f"Write the {m.role} text or delete that turn; --fix drops empty turns."))
    out += tool_issues(ex)
    for i, m in enumerate(ex.messages[1:], start=2):
        if m.role == "system":
            out.append(make_issue("role_order", "error", ex.line,
                                  f"{where}, message {i}: a system message can only come first.",
                                  "Move the system text to the first message; --fix does it."))
    turns = [(i, m) for i, m in enumerate(ex.messages, start=1) if m.role != "system"]
    for (_, a), (j, b) in zip(turns, turns[1:], strict=False):
        # a call, its results and the answer after them are assistant / tool / assistant by design
        if a.role == b.role and "tool" not in (a.role, b.role) and not a.tool_calls:
            out.append(make_issue("role_order", "error", ex.line,
                                  f"{where}: two {a.role} turns in a row (messages {j - 1} and {j}).",
                                  f"Merge them into one {a.role} turn, or add the missing "
                                  f"{'assistant' if a.role == 'user' else 'user'} turn between them; --fix merges "
                                  "them."))
    if not any(m.role == "assistant" for m in ex.messages):
        out.append(make_issue("no_assistant", "error", ex.line,
                              f"{where} has no assistant turn, so there is no answer to learn from.",
                              "Add the answer as {\"role\": \"assistant\", \"content\": ...}; --fix drops the row."))
        return out
    if not any(m.taught() for m in ex.messages):
        out.append(make_issue("no_assistant", "error", ex.line,
                              f"{where}: every assistant turn has weight 0, so nothing in it is taught.",
                              "Set \"weight\": 1 on the answer the model should learn, or delete the row; --fix "
                              "drops it."))
    if turns and turns[0][1].role == "assistant":
        out.append(make_issue("role_order", "error", ex.line,
                              f"{where} starts with the assistant, before any user turn.",
                              "Put the user's request first; --fix drops the leading assistant turn."))
    if turns and turns[-1][1].role != "assistant":
        out.append(make_issue("role_order", "error", ex.line,
                              f"{where} ends on a {turns[-1][1].role} turn, not on the assistant's answer.",
                              "End every conversation with the assistant's answer; --fix drops the trailing turn."))
    return out


def tool_issues(ex: Example) -> list[Issue]:
    """Tool calls that name no defined tool or carry arguments that are not JSON; results with no call before them."""
    where = at(ex)
    out: list[Issue] = []
    defined = {str(t.get("function", {}).get("name")) for t in ex.tools or ()}
    pending = results_allowed = False
    for i, m in enumerate(ex.messages, start=1):
        for call in m.tool_calls or ():
            if ex.tools is not None and call.name not in defined:
                out.append(make_issue("unknown_tool", "error", ex.line,
                                      f"{where}, message {i} calls \"{call.name}\", which is not among the tools "
                                      f"defined for it ({', '.join(sorted(defined)) or 'none'}).",
                                      f"Add a definition for \"{call.name}\" to \"tools\", or fix the name in the "
                                      "call."))
            try:
                json.loads(call.arguments)
            except json.JSONDecodeError:
                out.append(make_issue("bad_tool_arguments", "error", ex.line,
                                      f"{where}, message {i}: the arguments of \"{call.name}\" are not valid JSON "
                                      f"(`{call.arguments[:40]}`).",
                                      "Write the arguments as a JSON object, e.g. {\"city\": \"Paris\"}."))
        if m.role == "tool" and not results_allowed:
            out.append(make_issue("tool_order", "error", ex.line,
                                  f"{where}, message {i} is a tool result with no tool call before it.",
                                  "Put the assistant turn that makes the call (tool_calls) just before its result."))
        elif m.role in ("user", "assistant") and pending:
            out.append(make_issue("tool_order", "error", ex.line,
                                  f"{where}, message {i}: the tool call before it never gets its result.",
                                  "Add the tool's result ({\"role\": \"tool\", \"content\": ...}) right after the "
                                  "call."))
        if m.tool_calls:
            pending = results_allowed = True
        elif m.role == "tool":
            pending = False
        else:
            pending = results_allowed = False
    if any(m.tool_calls for m in ex.messages) and not ex.tools:
        out.append(make_issue("unknown_tool", "warning", ex.line,
                              f"{where} calls tools but defines none, so the model learns calls without their "
                              "descriptions.", "Add the tool definitions in a \"tools\" field next to \"messages\"."))
    return out


def _classification_issues(ex: Example) -> list[Issue]:
    where = at(ex)
    out = []
    if not ex.text.strip():
        out.append(make_issue("empty_field", "error", ex.line, f"{where}: \"text\" is empty.",
                              "Write the text to classify, or delete the line; --fix drops it."))
    if not (ex.label or "").strip():
        out.append(make_issue("empty_field", "error", ex.line, f"{where}: \"label\" is empty.",
                              "Give the row its class name; --fix drops rows without one."))
    return out


def _ner_issues(ex: Example) -> list[Issue]:
    where = at(ex)
    tokens, tags = ex.tokens or [], ex.tags or []
    if not tokens:
        return [make_issue("empty_field", "error", ex.line, f"{where}: \"tokens\" is empty.",
                           "Give the words of the sentence, one per entry; --fix drops the row.")]
    if len(tokens) != len(tags):
        return [make_issue("tag_mismatch", "error", ex.line,
                           f"{where} has {len(tokens)} tokens but {len(tags)} tags.",
                           "Give exactly one tag per token (O for words outside any entity); --fix drops the row.")]
    out = []
    for i, (prev, tag) in enumerate(zip(["O", *tags], tags, strict=False), start=1):
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            out.append(make_issue("tag_mismatch", "warning", ex.line,
                                  f"{where}, token {i} (\"{tokens[i - 1]}\") is tagged {tag} but does not continue a "
                                  f"{tag[2:]} entity.", f"Tag the first word of an entity B-{tag[2:]}."))
            break
    return out


def placeholder_issues(ex: Example) -> list[Issue]:
    """Template placeholders such as {{name}} or {customer} left unfilled: the model would learn to print them."""
    found: list[str] = []
    for m in ex.messages:
        if "{" in m.content:
            text = _CODE.sub(" ", m.content) if "`" in m.content else m.content
            found += _PLACEHOLDER.findall(text)
    if not found:
        return []
    more = f" and {len(found) - 1} more" if len(found) > 1 else ""
    return [make_issue("template_placeholder", "warning", ex.line,
                       f"{at(ex)} contains the template placeholder `{found[0]}`{more}; the model would learn to "
                       "write it literally.",
                       f"Replace `{found[0]}` with a realistic value (a name, a date, a product), or put it in "
                       "backticks if it is meant as code.")]


def allowed_label_issues(ex: Example, labels: Sequence[str]) -> list[Issue]:
    """A label outside the project's set of labels."""
    if not labels or ex.label is None or ex.label in labels:
        return []
    return [make_issue("unseen_label", "error", ex.line,
                       f"{at(ex)} has label '{ex.label}', which is not one of the project's labels "
                       f"({', '.join(sorted(labels))}).", "Fix the spelling or add the label to the project.")]
