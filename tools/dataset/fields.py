"""The fields of a record read one by one: text, roles, turns, tool calls and tool definitions, each problem noted."""

from __future__ import annotations

import json
from typing import Any

from tools.dataset.model import ROLES, Issue, Message, ToolCall

_ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant",
                 "ai": "assistant", "chatgpt": "assistant", "customer": "user", "developer": "system",
                 "function": "tool", "observation": "tool", "ipython": "tool"}
_TEXT_PART_TYPES = ("text", "input_text", "output_text")


class MediaPart(Exception):
    """A record carries an image, audio or video: this tool trains on text only."""


def issue(code: str, line: int | None, message: str, fix: str, severity: str = "error") -> Issue:
    """An Issue from plain arguments (errors by default)."""
    return Issue(code=code, severity=severity, line=line, message=message, fix=fix)  # type: ignore[arg-type]


def text_field(value: Any, where: str, line: int, issues: list[Issue]) -> str | None:
    """A text field: strings pass, content parts are joined (media parts raise MediaPart), else a problem."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        if any(p.get("type") not in _TEXT_PART_TYPES and "text" not in p for p in value):
            raise MediaPart
        # OpenAI writes a text part's text under "text", LLaMA-Factory's own demo files under "value"
        texts = [p.get("text", p.get("value")) for p in value]
        if all(isinstance(t, str) for t in texts):
            return "\n".join(texts)  # type: ignore[arg-type]
    if value is None:
        issues.append(issue("missing_field", line, f"Line {line}: {where} is missing (null).",
                            f"Add the text for {where}."))
        return None
    if isinstance(value, int | float | bool):
        return str(value)
    issues.append(issue("bad_type", line, f"Line {line}: {where} should be text but is a {type(value).__name__}.",
                        f"Write {where} as a plain string in quotes."))
    return None


def require(obj: dict[str, Any], key: str, fmt: str, line: int, issues: list[Issue]) -> bool:
    if key in obj:
        return True
    issues.append(issue("missing_field", line,
                        f"Line {line} has no \"{key}\" field, which every {fmt} record needs "
                        f"(it has: {', '.join(sorted(map(str, obj))) or 'nothing'}).",
                        f"Add \"{key}\" to this record, --map {key}=COLUMN to name the column that holds it, or "
                        f"--format another format if the file is not {fmt}."))
    return False


def _role(raw: Any, line: int, turn: int, issues: list[Issue]) -> str | None:
    role = str(raw).strip().lower() if raw is not None else ""
    if role in ROLES:
        return role
    alias = _ROLE_ALIASES.get(role)
    if alias:
        issues.append(issue("bad_role", line, f"Line {line}, message {turn}: role \"{raw}\" is not one of "
                                              f"system / user / assistant / tool; it was read as \"{alias}\".",
                            f"Rename the role to \"{alias}\"; --fix does it for you.", "warning"))
        return alias
    issues.append(issue("bad_role", line,
                        f"Line {line}, message {turn}: unknown role \"{raw}\" (allowed: system, user, assistant, "
                        "tool).", "Use system, user, assistant or tool. --fix drops this record."))
    return None


def _arguments(raw: Any) -> str:
    return raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)


def tool_calls(raw: Any, line: int, turn: int, issues: list[Issue]) -> list[ToolCall] | None:
    """OpenAI `tool_calls` / `function_call`, or a ShareGPT function_call value (JSON text), as ToolCalls."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            issues.append(issue("bad_tool_call", line, f"Line {line}, message {turn}: the function call is not "
                                                       f"JSON (`{raw[:40]}`).",
                                "Write the call as {\"name\": \"tool_name\", \"arguments\": {...}}."))
            return None
    calls = raw if isinstance(raw, list) else [raw]
    out = []
    for call in calls:
        fn = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            issues.append(issue("bad_tool_call", line, f"Line {line}, message {turn}: a tool call has no function "
                                                       "name.",
                                "Write each call as {\"type\": \"function\", \"function\": {\"name\": ..., "
                                "\"arguments\": \"{...}\"}}."))
            return None
        args = fn.get("arguments", fn.get("parameters", {}))
        out.append(ToolCall(name=fn["name"], arguments=_arguments(args),
                            id=call.get("id") if isinstance(call.get("id"), str) else None))
    return out


def tool_definitions(raw: Any, line: int, issues: list[Issue]) -> list[dict[str, Any]] | None:
    """The `tools` column (a list, or a JSON string of one) in OpenAI's shape {"type": "function", "function": …}."""
    if raw is None or raw == "" or raw == []:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            issues.append(issue("bad_tool_call", line, f"Line {line}: \"tools\" is not valid JSON.",
                                "Write the tool definitions as a JSON list of {\"name\", \"description\", "
                                "\"parameters\"}."))
            return None
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("function"), dict):
            out.append({"type": "function", "function": item["function"]})
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            out.append({"type": "function", "function": item})
        else:
            issues.append(issue("bad_tool_call", line, f"Line {line}: a tool definition has no name.",
                                "Give each tool {\"name\", \"description\", \"parameters\"}."))
            return None
    return out


def _weight(item: dict[str, Any]) -> float | None:
    raw = item.get("weight", item.get("loss_weight"))
    return float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None


def messages(items: Any, key_role: str, key_text: str, where: str, line: int,
             issues: list[Issue], role_map: dict[str, str] | None = None) -> list[Message] | None:
    """A list of turns as Messages (tool calls, tool results and turn weights kept); None after a problem."""
    if not isinstance(items, list):
        issues.append(issue("bad_type", line, f"Line {line}: \"{where}\" should be a list of turns but is a "
                                              f"{type(items).__name__}.",
                            f"Write \"{where}\" as a list: [{{\"{key_role}\": ..., \"{key_text}\": ...}}, ...]."))
        return None
    out: list[Message] = []
    ok = True
    for i, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            issues.append(issue("not_object", line, f"Line {line}, message {i} is not an object.",
                                f"Write each turn as {{\"{key_role}\": ..., \"{key_text}\": ...}}."))
            ok = False
            continue
        raw_role = item.get(key_role)
        calls_raw = item.get("tool_calls") or item.get("function_call")
        if role_map is not None and str(raw_role).strip().lower() == "function_call":
            calls_raw = item.get(key_text)
        missing = [k for k in (key_role, key_text) if k not in item and not (k == key_text and calls_raw)]
        for key in missing:
            issues.append(issue("missing_field", line, f"Line {line}, message {i} has no \"{key}\".",
                                f"Add \"{key}\" to message {i}."))
        if missing:
            ok = False
            continue
        mapped = role_map.get(str(raw_role).strip().lower()) if role_map is not None else None
        role = mapped or _role(raw_role, line, i, issues)
        calls = tool_calls(calls_raw, line, i, issues) if calls_raw else None
        text_raw = "" if calls_raw and (item.get(key_text) is None or calls_raw is item.get(key_text)) \
            else item.get(key_text)
        content = text_field(text_raw, f"message {i}'s \"{key_text}\"", line, issues)
        if role is None or content is None or (calls_raw and calls is None):
            ok = False
            continue
        call_id = item.get("tool_call_id")
        # every field was checked just above; a second validation per turn is what made reading slow
        out.append(Message.model_construct(role=role, content=content, tool_calls=calls,  # type: ignore[arg-type]
                                           tool_call_id=call_id if isinstance(call_id, str) else None,
                                           weight=_weight(item)))
    return out if ok else None
