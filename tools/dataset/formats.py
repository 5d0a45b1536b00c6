"""Record formats: tell which one a JSON object is in and turn it into a canonical row, reporting every problem."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from tools.dataset.fields import MediaPart, issue, messages, require, text_field, tool_definitions
from tools.dataset.model import Example, Issue, Message

_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "system": "system", "bot": "assistant", "model": "assistant", "chatgpt": "assistant",
                   "function_call": "assistant", "observation": "tool", "function": "tool", "tool": "tool"}
_PROMPT_KEYS = ("prompt", "question", "input", "query")
_COMPLETION_KEYS = ("completion", "response", "answer", "output")
_MEDIA_KEYS = ("images", "image", "audios", "audio", "videos", "video")


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


def _system_first(msgs: list[Message], obj: dict[str, Any]) -> list[Message]:
    system = obj.get("system")
    if isinstance(system, str) and system.strip() and not any(m.role == "system" for m in msgs):
        return [Message(role="system", content=system), *msgs]
    return msgs


def _from_messages(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    if not require(obj, "messages", "messages", line, issues):
        return None
    msgs = messages(obj["messages"], "role", "content", "messages", line, issues)
    if msgs is None:
        return None
    tools = tool_definitions(obj.get("tools") or obj.get("functions"), line, issues)
    return Example(messages=_system_first(msgs, obj), tools=tools, line=line)


def _from_sharegpt(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    if not require(obj, "conversations", "sharegpt", line, issues):
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
    if not (require(obj, "instruction", "alpaca", line, issues) and require(obj, out_key, "alpaca", line, issues)):
        return None
    instruction = text_field(obj["instruction"], '"instruction"', line, issues)
    extra_key = "input" if obj.get("input") else "context"
    extra = text_field(obj.get(extra_key) or "", f'"{extra_key}"', line, issues)
    output = text_field(obj[out_key], f'"{out_key}"', line, issues)
    history = _history(obj, line, issues)
    if instruction is None or extra is None or output is None or history is None:
        return None
    user = instruction if not extra.strip() else f"{instruction}\n\n{extra}"
    msgs = [*history, Message(role="user", content=user), Message(role="assistant", content=output)]
    return Example(messages=_system_first(msgs, obj), line=line)


def _from_prompt_completion(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    p_key = next((k for k in _PROMPT_KEYS if k in obj), "prompt")
    c_key = next((k for k in _COMPLETION_KEYS if k in obj and k != p_key), "completion")
    if not (require(obj, p_key, "prompt/completion", line, issues)
            and require(obj, c_key, "prompt/completion", line, issues)):
        return None
    prompt = text_field(obj[p_key], f'"{p_key}"', line, issues)
    completion = text_field(obj[c_key], f'"{c_key}"', line, issues)
    context = text_field(obj.get("context") or "", '"context"', line, issues)
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
    text = text_field(prompt if prompt is not None else "", '"prompt"', line, issues)
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
    text = text_field(raw, f'"{key}"', line, issues)
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
        if not (require(obj, "chosen", "preference (DPO)", line, issues)
                and require(obj, "rejected", "preference (DPO)", line, issues)):
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
    if not (require(obj, "text", "classification", line, issues)
            and require(obj, "label", "classification", line, issues)):
        return None
    text = text_field(obj["text"], '"text"', line, issues)
    label = text_field(obj["label"], '"label"', line, issues)
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
    if not (require(obj, "text", "entity extraction", line, issues)
            and require(obj, span_key, "entity extraction", line, issues)):
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

