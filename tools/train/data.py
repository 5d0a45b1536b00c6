"""Chat examples to token ids, rendered with the base model's own chat template; loss only on assistant turns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tools.dataset.model import Example

IGNORE = -100
"""Label value that cross-entropy skips."""

END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")
"""End-of-turn markers of the template families; whichever the tokenizer knows closes an assistant span."""


@dataclass
class TokenizedExample:
    """One training example: token ids and their labels (IGNORE where the model is not taught)."""

    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_label_tokens(self) -> int:
        """Tokens that count towards the loss."""
        return sum(1 for x in self.labels if x != IGNORE)


def _render(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]], generation_prompt: bool,
            tools: list[dict[str, Any]] | None = None) -> str:
    listed: list[Any] | None = list(tools) if tools else None
    text = tokenizer.apply_chat_template(messages, tools=listed, tokenize=False,
                                         add_generation_prompt=generation_prompt)
    assert isinstance(text, str), f"chat template returned {type(text).__name__}, not text"
    return text


def _end_markers(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    known = set(tokenizer.get_vocab())
    markers = [m for m in END_OF_TURN if m in known]
    if tokenizer.eos_token and tokenizer.eos_token not in markers:
        markers.append(str(tokenizer.eos_token))
    return markers


def assistant_spans(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]],
                    tools: list[dict[str, Any]] | None = None) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character span of each taught assistant reply, end-of-turn token included.

    Turns with `weight` 0 are rendered (the model reads them) but get no span, so they are not taught.
    """
    full = _render(tokenizer, messages, False, tools)
    markers = _end_markers(tokenizer)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight") == 0:
            continue
        prefix = _render(tokenizer, messages[:i], True, tools) if i else ""
        upto = _render(tokenizer, messages[: i + 1], False, tools)
        if not (full.startswith(prefix) and full.startswith(upto) and len(upto) >= len(prefix)):
            raise ValueError("the chat template does not render a conversation as a prefix of its continuation; "
                             "cannot tell which tokens belong to the assistant")
        start, end = len(prefix), len(upto)
        # stop right after the end-of-turn marker: what the template adds after it (a newline) is not taught
        content = (message.get("content") or "").strip()
        content_end = full.find(content, start)
        search_from = content_end + len(content) if content_end >= 0 else start
        hits = [(full.find(m, search_from, end), m) for m in markers]
        hits = [(pos, m) for pos, m in hits if pos >= 0]
        if hits:
            pos, marker = min(hits)
            end = pos + len(marker)
        spans.append((start, end))
    return full, spans


def fold_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Move system text into the first user turn, for templates without a system role."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    first_user = next((m for m in rest if m["role"] == "user"), None)
    if first_user is None:
        return [{"role": "user", "content": system}, *rest]
    first_user["content"] = f"{system}\n\n{first_user['content']}"
    return rest


def supports_tools(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the base's chat template has its own way to show tool definitions, calls and results."""
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    return "tool_calls" in template and "tools" in template


def chat_messages(ex: Example, tool_format: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """An example's turns and tools as the chat template takes them.

    With `tool_format` calls go in the template's own shape (arguments as objects); without it (a template
    with no tool support) calls, results and definitions become plain text turns the template can show.
    """
    if tool_format:
        msgs: list[dict[str, Any]] = []
        for m in ex.messages:
            d: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.tool_calls:
                d["tool_calls"] = [{"type": "function", "id": c.id,
                                    "function": {"name": c.name, "arguments": _json_or_text(c.arguments)}}
                                   for c in m.tool_calls]
            if m.tool_call_id:
                d["tool_call_id"] = m.tool_call_id
            if m.weight is not None:
                d["weight"] = m.weight
            msgs.append(d)
        return msgs, ex.tools
    plain: list[dict[str, Any]] = []
    if ex.tools:
        listing = "\n".join(json.dumps(t.get("function", t), ensure_ascii=False) for t in ex.tools)
        plain.append({"role": "system", "content": f"You can call these tools; write a call as JSON "
                                                   f"{{\"name\": ..., \"arguments\": ...}}:\n{listing}"})
    for m in ex.messages:
        content = m.content
        if m.tool_calls:
            calls = "\n".join(json.dumps({"name": c.name, "arguments": _json_or_text(c.arguments)},
                                         ensure_ascii=False) for c in m.tool_calls)
            content = f"{content}\n{calls}".strip()
        role = m.role
        if role == "tool":
            role, content = "user", f"Tool result:\n{content}"
        d = {"role": role, "content": content}
        if m.weight is not None:
            d["weight"] = m.weight
        if plain and plain[-1]["role"] == role and role in ("user", "system"):
            plain[-1]["content"] += f"\n\n{content}"
        else:
            plain.append(d)
    return _merge_systems(plain), None


def _merge_systems(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    system = [m["content"] for m in msgs if m["role"] == "system"]
    rest = [m for m in msgs if m["role"] != "system"]
    return ([{"role": "system", "content": "\n\n".join(system)}] if system else []) + rest


def _json_or_text(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except json.JSONDecodeError:
        return arguments


def tokenize_example(tokenizer: PreTrainedTokenizerBase, ex: Example, max_len: int) -> TokenizedExample:
    """One chat example with its tools and turn weights, in the base's chat template (see tokenize_chat)."""
    msgs, tools = chat_messages(ex, supports_tools(tokenizer))
    return tokenize_chat(tokenizer, msgs, max_len, tools=tools)


def tokenize_chat(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]], max_len: int,
                  tools: list[dict[str, Any]] | None = None) -> TokenizedExample:
    """Render `messages` in the tokenizer's chat template; label only taught assistant tokens, end-of-turn included."""
    from jinja2.exceptions import TemplateError

    try:
        text, spans = assistant_spans(tokenizer, messages, tools)
    except TemplateError:
        # some templates (Gemma's) refuse a system turn; those models read it as the start of the first user turn
        if not any(m["role"] == "system" for m in messages):
            raise
        text, spans = assistant_spans(tokenizer, fold_system(messages), tools)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    labels = [IGNORE] * len(ids)
    for k, (start, end) in enumerate(enc["offset_mapping"]):
        if end > start and any(s <= start < e for s, e in spans):
            labels[k] = ids[k]
    return TokenizedExample(ids[:max_len], labels[:max_len])


def tokenize_text(tokenizer: PreTrainedTokenizerBase, text: str, max_len: int) -> TokenizedExample:
    """Plain text (no chat turns): every token is taught, EOS appended."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    ids = ids[:max_len]
    return TokenizedExample(ids, list(ids))
