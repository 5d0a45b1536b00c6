"""Lengths in tokens: the base model's tokenizer when it is on this machine, else a script-aware estimate."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence

from tools.dataset.model import Example, Issue
from tools.dataset.notes import MAX_EXAMPLE_CHARS
from tools.dataset.rows import at, make_issue
from tools.dataset.text import mask_counts, word_mask
from tools.errors import UsageError

DEFAULT_CONTEXT = 4096
# Latin-script words are about 1.3 tokens each in the tokenizers of common bases; a long run of letters and
# digits (a URL, an ID, code) is cut every ~4 characters once it is past a word's usual length
TOKENS_PER_WORD = 1.3
CHARS_PER_WORD = 8
CHARS_PER_TOKEN = 4
# Chinese, Japanese and Korean characters (and their punctuation) are about one token each
_CJK = re.compile("[\u1100-\u11ff\u2e80-\u2fdf\u3000-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
                  "\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\uff00-\uffef]")
TURN_OVERHEAD = 4
# an answer is unusual when it is outside the middle half of its category's lengths by more than this many
# interquartile ranges (on a log scale) and also 5× off the category's median
OUTLIER_IQR = 1.5
OUTLIER_FACTOR = 5.0
MIN_FOR_OUTLIERS = 10
MIN_PER_CATEGORY = 20

TokenCounter = Callable[[Sequence[Example]], list[int]]


def estimate_text(text: str) -> int:
    """Tokens in `text` without a tokenizer: CJK characters one each, other words ~1.3, long runs ~4 chars each."""
    cjk = 0
    mask = word_mask(text)
    if mask is not None:
        words, chars = mask_counts(mask)
    else:
        cjk = len(_CJK.findall(text))
        if cjk:
            text = _CJK.sub(" ", text)
        split = text.split()
        words, chars = len(split), sum(map(len, split))
    extra = max(0, chars - CHARS_PER_WORD * words) / CHARS_PER_TOKEN
    return cjk + math.ceil(TOKENS_PER_WORD * words + extra)


def message_estimates(ex: Example) -> list[int]:
    """Estimated tokens of each message's text, in order (tool-call arguments not included)."""
    return [estimate_text(m.content) for m in ex.messages]


def estimate_tokens(ex: Example, per_message: Sequence[int] | None = None) -> int:
    """Estimated tokens of one row, with a few per turn for the chat template.

    `per_message` is message_estimates(ex) when the caller has already worked it out.
    """
    if ex.tokens is not None:
        return estimate_text(" ".join(ex.tokens)) + 2
    calls = sum(estimate_text(c.arguments) for m in ex.messages for c in m.tool_calls or ())
    if per_message is None:
        per_message = message_estimates(ex)
    return sum(n + TURN_OVERHEAD for n in per_message) + calls + 2


def estimate_counter(examples: Sequence[Example]) -> list[int]:
    """Token estimates for many rows."""
    return [estimate_tokens(ex) for ex in examples]


def tokenizer_counter(model: str) -> TokenCounter:
    """Exact counts with `model`'s tokenizer and chat template (loaded offline; UsageError when it is not here)."""
    from tools.models.catalog import load_tokenizer

    tok = load_tokenizer(model)

    def count(examples: Sequence[Example]) -> list[int]:
        out = []
        for ex in examples:
            if ex.kind == "chat":
                msgs = [m.model_dump() for m in ex.messages]
                out.append(len(tok.apply_chat_template(msgs, tokenize=True, return_dict=False)))
            else:
                out.append(len(tok(ex.text)["input_ids"]))
        return out

    return count


def counter_for(model: str | None) -> tuple[TokenCounter, str]:
    """How to count tokens for `model`, and the words the report uses for it: its tokenizer if here, else estimates."""
    estimate = "estimate: CJK characters one token each, other words about 1.3"
    if not model:
        return estimate_counter, estimate
    try:
        return tokenizer_counter(model), f"tokenizer of {model}"
    except UsageError:
        from tools.models.catalog import resolve

        resolve(model)  # an unknown name is still an error; only a tokenizer not downloaded falls back
        return estimate_counter, f"{estimate} (the tokenizer of {model} is not on this machine)"


def default_context(model: str | None) -> int:
    """The context to check against: 4096 (the training default), or less when the model supports less."""
    if not model:
        return DEFAULT_CONTEXT
    from tools.models.catalog import resolve

    return min(DEFAULT_CONTEXT, resolve(model).context)


def too_long_issue(ex: Example, tokens: int, context: int) -> Issue:
    """A row longer than the context (its end would be cut off, often the end-of-turn marker)."""
    return make_issue("too_long", "error", ex.line,
                      f"{at(ex)} is about {tokens:,} tokens, longer than the {context:,}-token context; training "
                      "would cut off its end, and a model that never sees the end of an answer does not learn to "
                      "stop.",
                      "Shorten the answer or split the conversation, or raise the context; --fix drops rows that "
                      "do not fit.")


def too_big_issue(ex: Example, chars: int) -> Issue:
    """A row with more text than one example may hold: reported, and neither tokenised nor scanned further."""
    return make_issue("too_long", "error", ex.line,
                      f"{at(ex)} holds {chars:,} characters of text, more than the {MAX_EXAMPLE_CHARS:,} one "
                      "example may have; it was not checked further.",
                      "Split it into examples of a few thousand words each, or remove it; --fix drops it.")


def outlier_issues(lines: Sequence[int | None], categories: Sequence[str], lengths: Sequence[int]) -> list[Issue]:
    """Answers far shorter or longer than the usual answer of their own category (the model copies lengths it sees).

    Each category with enough rows is measured against itself, the rest against the whole dataset, so a
    dataset that mixes one-word answers with essays does not flag either kind.
    """
    if len(lengths) < MIN_FOR_OUTLIERS:
        return []
    groups: dict[str, list[int]] = defaultdict(list)
    for i, cat in enumerate(categories):
        groups[cat].append(i)
    pooled = list(range(len(lengths)))
    fences = {cat: _fences([lengths[i] for i in idx if lengths[i] > 0] or [1])
              for cat, idx in [*groups.items(), ("", pooled)] if len(idx) >= MIN_PER_CATEGORY or cat == ""}
    out = []
    for line, cat, n in zip(lines, categories, lengths, strict=True):
        low, high, median = fences.get(cat, fences[""])
        if n < low:
            out.append(make_issue("length_outlier", "warning", line,
                                  f"Line {line}: the answer is about {n} tokens, far shorter than the usual "
                                  f"{median:.0f} for its kind.",
                                  "Check it is complete; short answers teach the model to stop early."))
        elif n > high:
            out.append(make_issue("length_outlier", "warning", line,
                                  f"Line {line}: the answer is about {n} tokens, far longer than the usual "
                                  f"{median:.0f} for its kind.",
                                  "Check it is meant to be this long; long outliers make answers ramble."))
    return out


def _fences(values: list[int]) -> tuple[float, float, float]:
    """(low, high, median) answer lengths outside which an answer is unusual."""
    ordered = sorted(values)
    q1, median, q3 = (ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.25, 0.5, 0.75))
    spread = math.log(q3) - math.log(q1)
    low = min(math.exp(math.log(q1) - OUTLIER_IQR * spread), median / OUTLIER_FACTOR)
    high = max(math.exp(math.log(q3) + OUTLIER_IQR * spread), median * OUTLIER_FACTOR, 60)
    return low, high, median
