"""Record formats: tell which one a JSON object is in and turn it into a canonical row, reporting every problem."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from tools.dataset.model import ROLES, Example, Issue, Message, ToolCall

_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "system": "system", "bot": "assistant", "model": "assistant", "chatgpt": "assistant",
                   "function_call": "assistant", "observation": "tool", "function": "tool", "tool": "tool"}
_ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant",
                 "ai": "assistant", "chatgpt": "assistant", "customer": "user", "developer": "system",
                 "function": "tool", "observation": "tool", "ipython": "tool"}
_PROMPT_KEYS = ("prompt", "question", "input", "query")
_COMPLETION_KEYS = ("completion", "response", "answer", "output")
_MEDIA_KEYS = ("images", "image", "audios", "audio", "videos", "video")
_TEXT_PART_TYPES = ("text", "input_text", "output_text")


class MediaPart(Exception):
    """A record carries an image, audio or video: this tool trains on text only."""


def detect_format(value: Any) -> str | None:
    """The record format one JSON object is in, judged by its keys; None when it matches none."""
    if not isinstance(value, dict):
        return None
    keys = set(value)
    if value and all(isinstance(v, dict) for v in value.values()) \
            and any("file_name" in v or "hf_hub_url" in v for v in value.values()):
        return "dataset_registry"
    if ("chosen" in keys and "rejected" in keys) or ("chosen_messages" in keys and "rejected_messages" in keys):
        return "dpo"
    if ("kto_tag" in keys or isinstance(value.get("label"), bool)) and keys & {"messages", "conversations",
                                                                             "completion", "output"}:
        return "kto"
    if "messages" in keys:
        return "messages"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys and ("output" in keys or "response" in keys):
        return "dolly" if "context" in keys else "alpaca"
    if "tokens" in keys and ("tags" in keys or "ner_tags" in keys):
        return "ner"
    if "text" in keys and ("spans" in keys or "entities" in keys):
        return "ner"
    if "text" in keys and "label" in keys:
        return "classification"
    if any(k in keys for k in _PROMPT_KEYS) and any(k in keys for k in _COMPLETION_KEYS):
        return "prompt_completion"
    return None


def issue(code: str, line: int | None, message: str, fix: str, severity: str = "error") -> Issue:
    """An Issue from plain arguments (errors by default)."""
    return Issue(code=code, severity=severity, line=line, message=message, fix=fix)  # type: ignore[arg-type]


def _text(value: Any, where: str, line: int, issues: list[Issue]) -> str | None:
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


def _require(obj: dict[str, Any], key: str, fmt: str, line: int, issues: list[Issue]) -> bool:
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
        content = _text(text_raw, f"message {i}'s \"{key_text}\"", line, issues)
        if role is None or content is None or (calls_raw and calls is None):
            ok = False
            continue
        call_id = item.get("tool_call_id")
        # every field was checked just above; a second validation per turn is what made reading slow
        out.append(Message.model_construct(role=role, content=content, tool_calls=calls,  # type: ignore[arg-type]
                                           tool_call_id=call_id if isinstance(call_id, str) else None,
                                           weight=_weight(item)))
    return out if ok else None


def _system_first(msgs: list[Message], obj: dict[str, Any]) -> list[Message]:
    system = obj.get("system")
    if isinstance(system, str) and system.strip() and not any(m.role == "system" for m in msgs):
        return [Message(role="system", content=system), *msgs]
    return msgs


def _from_messages(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    if not _require(obj, "messages", "messages", line, issues):
        return None
    msgs = messages(obj["messages"], "role", "content", "messages", line, issues)
    if msgs is None:
        return None
    tools = tool_definitions(obj.get("tools") or obj.get("functions"), line, issues)
    return Example(messages=_system_first(msgs, obj), tools=tools, line=line)


def _from_sharegpt(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    if not _require(obj, "conversations", "sharegpt", line, issues):
        return None
    msgs = messages(obj["conversations"], "from", "value", "conversations", line, issues, _SHAREGPT_ROLES)
    if msgs is None:
        return None
    tools = tool_definitions(obj.get("tools"), line, issues)
    return Example(messages=_system_first(msgs, obj), tools=tools, line=line)


def _history(obj: dict[str, Any], line: int, issues: list[Issue]) -> list[Message] | None:
    out: list[Message] = []
    for pair in obj.get("history") or []:
        if isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(p, str) for p in pair):
            out += [Message(role="user", content=pair[0]), Message(role="assistant", content=pair[1])]
        else:
            issues.append(issue("bad_type", line, f"Line {line}: a \"history\" entry is not a [question, "
                                                  "answer] pair of texts.",
                                "Write history as [[\"earlier question\", \"earlier answer\"], ...]."))
            return None
    return out


def _from_alpaca(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    """Alpaca and Dolly: the `input` / `context` passage goes into the user turn, `history` before it."""
    out_key = "output" if "output" in obj else "response"
    if not (_require(obj, "instruction", "alpaca", line, issues) and _require(obj, out_key, "alpaca", line, issues)):
        return None
    instruction = _text(obj["instruction"], '"instruction"', line, issues)
    extra_key = "input" if obj.get("input") else "context"
    extra = _text(obj.get(extra_key) or "", f'"{extra_key}"', line, issues)
    output = _text(obj[out_key], f'"{out_key}"', line, issues)
    history = _history(obj, line, issues)
    if instruction is None or extra is None or output is None or history is None:
        return None
    user = instruction if not extra.strip() else f"{instruction}\n\n{extra}"
    msgs = [*history, Message(role="user", content=user), Message(role="assistant", content=output)]
    return Example(messages=_system_first(msgs, obj), line=line)


def _from_prompt_completion(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    p_key = next((k for k in _PROMPT_KEYS if k in obj), "prompt")
    c_key = next((k for k in _COMPLETION_KEYS if k in obj and k != p_key), "completion")
    if not (_require(obj, p_key, "prompt/completion", line, issues)
            and _require(obj, c_key, "prompt/completion", line, issues)):
        return None
    prompt = _text(obj[p_key], f'"{p_key}"', line, issues)
    completion = _text(obj[c_key], f'"{c_key}"', line, issues)
    context = _text(obj.get("context") or "", '"context"', line, issues)
    if prompt is None or completion is None or context is None:
        return None
    user = prompt if not context.strip() else f"{prompt}\n\n{context}"
    msgs = [Message(role="user", content=user), Message(role="assistant", content=completion)]
    return Example(messages=_system_first(msgs, obj), line=line)


def _prompt_turns(obj: dict[str, Any], line: int, issues: list[Issue]) -> list[Message] | None:
    """The conversation before the answer in a preference record, in whichever shape it came."""
    if "conversations" in obj:
        return messages(obj["conversations"], "from", "value", "conversations", line, issues, _SHAREGPT_ROLES)
    prompt = obj.get("prompt", obj.get("messages", obj.get("instruction")))
    if isinstance(prompt, list):
        return messages(prompt, "role", "content", "prompt", line, issues)
    text = _text(prompt if prompt is not None else "", '"prompt"', line, issues)
    extra = obj.get("input")
    if text is not None and isinstance(extra, str) and extra.strip():
        text = f"{text}\n\n{extra}"
    history = _history(obj, line, issues)
    if text is None or history is None:
        return None
    return history + ([Message(role="user", content=text)] if text.strip() else [])


def _answer_turns(raw: Any, key: str, line: int, issues: list[Issue]) -> list[Message] | None:
    if isinstance(raw, dict):
        raw = [raw]
    if isinstance(raw, list):
        role_key, text_key = ("from", "value") if raw and isinstance(raw[0], dict) and "from" in raw[0] \
            else ("role", "content")
        return messages(raw, role_key, text_key, key, line, issues, _SHAREGPT_ROLES)
    text = _text(raw, f'"{key}"', line, issues)
    return None if text is None else [Message(role="assistant", content=text)]


def _after(prompt: list[Message], turns: list[Message]) -> list[Message]:
    """An answer without the prompt turns it repeats (TRL's conversational shape and LLaMA-Factory v1 do)."""
    return turns[len(prompt):] if turns[: len(prompt)] == prompt else turns


def _from_dpo(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    """A DPO record: the prompt and the chosen answer as the conversation, the rejected answer beside it."""
    prompt: list[Message] | None
    if "chosen_messages" in obj and "rejected_messages" in obj:
        # LLaMA-Factory v1: two whole conversations that share everything before the answer
        chosen = _answer_turns(obj["chosen_messages"], "chosen_messages", line, issues)
        rejected = _answer_turns(obj["rejected_messages"], "rejected_messages", line, issues)
        if chosen is None or rejected is None:
            return None
        shared = 0
        while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared] \
                and chosen[shared].role != "assistant":
            shared += 1
        prompt = chosen[:shared]
    else:
        if not (_require(obj, "chosen", "preference (DPO)", line, issues)
                and _require(obj, "rejected", "preference (DPO)", line, issues)):
            return None
        prompt = _prompt_turns(obj, line, issues)
        chosen = _answer_turns(obj["chosen"], "chosen", line, issues)
        rejected = _answer_turns(obj["rejected"], "rejected", line, issues)
        if prompt is None or chosen is None or rejected is None:
            return None
    return Example(messages=_system_first(prompt + _after(prompt, chosen), obj), rejected=_after(prompt, rejected),
                   models=_models(obj), line=line)


def _models(obj: dict[str, Any]) -> dict[str, str] | None:
    """Who wrote a judgement's answers, as the chat keeps it with the judgement."""
    raw = obj.get("models")
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) and raw else None


def _from_kto(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    """A KTO record: the conversation and whether its answer is desirable."""
    flag = obj.get("label", obj.get("kto_tag"))
    if not isinstance(flag, bool):
        issues.append(issue("bad_type", line, f"Line {line}: the preference label should be true or false "
                                              f"(got {flag!r}).", "Write \"label\": true or \"label\": false."))
        return None
    if "messages" in obj:
        base = _from_messages(obj, line, issues)
    elif "conversations" in obj:
        base = _from_sharegpt(obj, line, issues)
    elif isinstance(obj.get("prompt"), list) or isinstance(obj.get("completion"), list):
        # TRL's conversational shape: the prompt's turns, then the answer's
        prompt = _prompt_turns(obj, line, issues)
        answer = _answer_turns(obj.get("completion"), "completion", line, issues)
        if prompt is None or answer is None:
            return None
        base = Example(messages=_system_first(prompt + _after(prompt, answer), obj), line=line)
    else:
        base = _from_prompt_completion(obj, line, issues)
    return None if base is None else base.model_copy(update={"desirable": flag, "models": _models(obj)})


def _from_classification(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    if not (_require(obj, "text", "classification", line, issues)
            and _require(obj, "label", "classification", line, issues)):
        return None
    text = _text(obj["text"], '"text"', line, issues)
    label = _text(obj["label"], '"label"', line, issues)
    if text is None or label is None:
        return None
    return Example.classified(text, label, line=line)


def _from_ner(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    if "tokens" in obj:
        tag_key = "tags" if "tags" in obj else "ner_tags"
        tokens, tags = obj.get("tokens"), obj.get(tag_key)
        if not (isinstance(tokens, list) and isinstance(tags, list)):
            issues.append(issue("bad_type", line, f"Line {line}: \"tokens\" and \"{tag_key}\" must both be lists.",
                                "Write them as [\"word\", ...] and [\"B-PER\", \"O\", ...], one tag per token."))
            return None
        return Example(tokens=[str(t) for t in tokens], tags=[str(t) for t in tags], line=line)
    span_key = "spans" if "spans" in obj else "entities"
    if not (_require(obj, "text", "entity extraction", line, issues)
            and _require(obj, span_key, "entity extraction", line, issues)):
        return None
    text, spans = obj["text"], obj[span_key]
    if not isinstance(text, str) or not isinstance(spans, list):
        issues.append(issue("bad_type", line, f"Line {line}: \"text\" must be text and \"{span_key}\" a list.",
                            f"Write \"{span_key}\" as [{{\"start\": 0, \"end\": 5, \"label\": \"ORG\"}}, ...]."))
        return None
    return bio_from_spans(text, spans, span_key, line, issues)


def bio_from_spans(text: str, spans: list[Any], key: str, line: int | None, issues: list[Issue]) -> Example | None:
    """An entity row from text + character spans: whitespace tokens with BIO tags; bad spans go to `issues`."""
    words = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", text)]
    tags = ["O"] * len(words)
    for i, span in enumerate(spans, start=1):
        ok = isinstance(span, dict) and isinstance(span.get("start"), int) and isinstance(span.get("end"), int) \
            and isinstance(span.get("label"), str)
        if not ok or not (0 <= span["start"] < span["end"] <= len(text)):
            issues.append(issue("bad_type", line, f"Line {line}: span {i} in \"{key}\" needs integer start < end "
                                                  f"within the text and a label (got {span!r}).",
                                "Write each span as {\"start\": 0, \"end\": 5, \"label\": \"ORG\"}."))
            return None
        inside = [j for j, (s, e, _) in enumerate(words) if s < span["end"] and e > span["start"]]
        for k, j in enumerate(inside):
            tags[j] = ("B-" if k == 0 else "I-") + span["label"]
    return Example(tokens=[w for _, _, w in words], tags=tags, line=line)


_CONVERTERS = {
    "messages": _from_messages, "sharegpt": _from_sharegpt, "alpaca": _from_alpaca, "dolly": _from_alpaca,
    "prompt_completion": _from_prompt_completion, "classification": _from_classification, "ner": _from_ner,
    "dpo": _from_dpo, "kto": _from_kto,
}


def to_example(value: Any, fmt: str, line: int, issues: list[Issue]) -> Example | None:
    """Convert one raw record in format `fmt` to a canonical row; problems go to `issues`.

    Raises MediaPart when the record holds images, audio or video (the caller counts and skips it).
    """
    if not isinstance(value, dict):
        kind = "a list" if isinstance(value, list) else type(value).__name__
        issues.append(issue("not_object", line, f"Line {line} is {kind}, not a JSON object.",
                            "Each line must be one object, e.g. {\"messages\": [...]}. --fix drops this line."))
        return None
    if any(value.get(k) for k in _MEDIA_KEYS):
        raise MediaPart
    if fmt in ("dpo", "kto"):
        # a file of judgements may hold pairs and single rated answers side by side (the chat keeps both)
        own = detect_format(value)
        fmt = own if own in ("dpo", "kto") else fmt
    try:
        return _CONVERTERS[fmt](value, line, issues)
    except ValidationError as exc:  # defensive: converters build models from checked values
        issues.append(issue("bad_type", line, f"Line {line} could not be read: {exc.errors()[0]['msg']}.",
                            "Check the field types of this record."))
        return None
