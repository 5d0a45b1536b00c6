"""Answer a free-form question from the knowledge base: the assistant model grounded in the best entries."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from tools.troubleshoot.kb import Entry, Method, search

SYSTEM = (
    "You help a product manager who is fine-tuning a language model on a laptop. Answer ONLY from the "
    "knowledge-base entries given, in plain words, in at most 150 words: what is going on and the concrete "
    "fix (settings and commands exactly as the entries write them). Cite the entries you used by their id in "
    "square brackets, e.g. [out-of-memory]. If the entries do not cover the question, say so."
)


@dataclass
class Explanation:
    """The answer to a question and the entries it rests on."""

    question: str
    entries: list[Entry]
    answer: str | None
    """The assistant model's grounded answer; None when it could not be asked."""
    model: str | None
    note: str = ""
    """Why there is no model answer (e.g. Ollama is not running), in plain words."""


def grounded_prompt(question: str, entries: list[Entry]) -> str:
    """The user message: the question and the retrieved entries, each labelled with its id."""
    blocks = "\n\n".join(f"[{e.id}]\n{e.text.strip()}" for e in entries)
    return f"Knowledge-base entries:\n\n{blocks}\n\nQuestion: {question}"


MAX_ANSWER_TOKENS = 320
"""150 words and the citations fit; a model that goes on past it is rambling."""
TIME_LIMIT_S = 45.0
MIN_GROUNDED = 0.35
"""The share of an answer's meaningful words that must come from the entries it was given."""


def explain_question(question: str, *, k: int = 3, method: Method = "auto", model: str | None = None,
                     cancel: threading.Event | None = None, time_limit_s: float = TIME_LIMIT_S,
                     ask: bool = True) -> Explanation:
    """Retrieve the best entries; ask the assistant model when Ollama answers, otherwise return the entries.

    The model's answer is bounded (MAX_ANSWER_TOKENS, `time_limit_s`, `cancel`) and kept only when it makes
    sense: not empty, not looping, not a question back or the question repeated, and written from the entries.
    Otherwise `answer` is None and `note` says why, so the caller shows the entries themselves. With `ask` false
    (no assistant model this session) only the entries come back.
    """
    from tools import ollama_api
    from tools.errors import MTWError
    from tools.settings import assistant_model

    entries = search(question, k, method=method)
    if not entries:
        return Explanation(question, [], None, None, "Nothing in the knowledge base matches that question.")
    if not ask:
        return Explanation(question, entries, None, None)
    model = model or assistant_model()
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": grounded_prompt(question, entries)}]
    try:
        reply = ollama_api.stream_reply(model, messages, time_limit_s=time_limit_s, cancel=cancel,
                                        options={"temperature": 0, "seed": 0, "num_predict": MAX_ANSWER_TOKENS})
    except MTWError as exc:
        return Explanation(question, entries, None, None, f"{exc.message} {exc.fix}".strip())
    text = _whole_sentences(reply.text.strip()) if reply.done_reason == "length" else reply.text.strip()
    why = answer_problem(text, question, entries)
    if why:
        return Explanation(question, entries, None, None,
                           f"The assistant model's answer was not usable ({why}), so here is the guide itself.")
    return Explanation(question, entries, text, model)


def answer_problem(text: str, question: str, entries: list[Entry]) -> str:
    """Why a model's answer to a knowledge-base question is not worth showing, in a few words; "" when it is."""
    from tools import sense

    if not text:
        return "it was empty"
    if sense.looping(text):
        return "it repeated itself"
    if sense.same_text(text, question) or sense.copies(text, question):
        return "it repeated the question"
    sentences = [x for x in re.split(r"(?<=[.!?])\s+", text) if x.strip()]
    if sentences[-1].rstrip().endswith("?") and len(sentences) <= 2:
        return "it asked a question back"
    cited = set(re.findall(r"\[([\w-]+)\]", text))
    source = " ".join(e.text for e in entries)
    if sense.grounded(re.sub(r"\[[\w-]+\]", "", text), source) < MIN_GROUNDED and not cited & {e.id for e in entries}:
        return "it was not written from the guide"
    return ""


def _whole_sentences(text: str) -> str:
    """An answer cut off at its token limit, up to its last finished sentence ("" when it has none)."""
    end = max(text.rfind(". "), text.rfind(".\n"), text.rfind("! "), text.rfind("? "))
    if text.endswith((".", "!", "?")):
        return text
    return text[: end + 1] if end > 0 else ""


def cited(answer: str, entries: list[Entry]) -> list[Entry]:
    """The entries an answer cites by [id]; the best one when it cites none."""
    ids = set(re.findall(r"\[([\w-]+)\]", answer))
    return [e for e in entries if e.id in ids] or entries[:1]


def relevant_lines(entry: Entry, question: str, most: int = 6) -> str:
    """The lines of an entry that speak to the question ("what is LoRA?" → the LoRA line), or its fix."""
    from tools.troubleshoot.kb import tokenize

    asked = set(tokenize(question))
    lines = [ln for part in (entry.fix, entry.cause, entry.symptoms) for ln in part.splitlines()
             if ln.strip() and asked & set(tokenize(ln))]
    # a line that names a term is better than one that merely shares a word with the question
    lines.sort(key=lambda ln: -len(asked & set(tokenize(ln.split(":")[0]))))
    return "\n".join(lines[:most]) if lines else entry.fix
