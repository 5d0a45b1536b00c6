"""Chat examples to token ids, rendered with the base model's own chat template; loss only on assistant turns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

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


def _render(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    assert isinstance(text, str), f"chat template returned {type(text).__name__}, not text"
    return text


def _end_markers(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    known = set(tokenizer.get_vocab())
    markers = [m for m in END_OF_TURN if m in known]
    if tokenizer.eos_token and tokenizer.eos_token not in markers:
        markers.append(str(tokenizer.eos_token))
    return markers


def assistant_spans(tokenizer: PreTrainedTokenizerBase,
                    messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character span of each assistant reply, up to and including its end-of-turn token."""
    full = _render(tokenizer, messages, generation_prompt=False)
    markers = _end_markers(tokenizer)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = _render(tokenizer, messages[:i], generation_prompt=True) if i else ""
        upto = _render(tokenizer, messages[: i + 1], generation_prompt=False)
        if not (full.startswith(prefix) and full.startswith(upto) and len(upto) >= len(prefix)):
            raise ValueError("the chat template does not render a conversation as a prefix of its continuation; "
                             "cannot tell which tokens belong to the assistant")
        start, end = len(prefix), len(upto)
        # stop right after the end-of-turn marker: what the template adds after it (a newline) is not taught
        content_end = full.find(message["content"].strip(), start)
        search_from = content_end + len(message["content"].strip()) if content_end >= 0 else start
        hits = [(full.find(m, search_from, end), m) for m in markers]
        hits = [(pos, m) for pos, m in hits if pos >= 0]
        if hits:
            pos, marker = min(hits)
            end = pos + len(marker)
        spans.append((start, end))
    return full, spans


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Move system text into the first user turn, for templates without a system role."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    first_user = next((m for m in rest if m["role"] == "user"), None)
    if first_user is None:
        return [{"role": "user", "content": system}, *rest]
    first_user["content"] = f"{system}\n\n{first_user['content']}"
    return rest


def tokenize_chat(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], max_len: int) -> TokenizedExample:
    """Render `messages` with the tokenizer's chat template; label only assistant tokens, end-of-turn included."""
    from jinja2.exceptions import TemplateError

    try:
        text, spans = assistant_spans(tokenizer, messages)
    except TemplateError:
        # some templates (Gemma's) refuse a system turn; those models read it as the start of the first user turn
        if not any(m["role"] == "system" for m in messages):
            raise
        text, spans = assistant_spans(tokenizer, fold_system(messages))
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
