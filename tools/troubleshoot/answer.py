"""Answer a free-form question from the knowledge base: the assistant model grounded in the best entries."""

from __future__ import annotations

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


def explain_question(question: str, *, k: int = 3, method: Method = "auto", model: str | None = None) -> Explanation:
    """Retrieve the best entries; ask the assistant model when Ollama answers, otherwise return the entries."""
    import httpx
    import ollama

    from tools import ollama_api
    from tools.settings import assistant_model

    entries = search(question, k, method=method)
    if not entries:
        return Explanation(question, [], None, None, "Nothing in the knowledge base matches that question.")
    model = model or assistant_model()
    try:
        reply = ollama_api.client(timeout=120).chat(
            model=model,
            messages=[{"role": "system", "content": SYSTEM},
                      {"role": "user", "content": grounded_prompt(question, entries)}],
            options={"temperature": 0},
            stream=False,
        )
    except (ConnectionError, httpx.HTTPError, ollama.ResponseError) as exc:
        err = ollama_api.translate(exc, model)
        return Explanation(question, entries, None, None, f"{err.message} {err.fix}".strip())
    text = (reply.message.content or "").strip()
    return Explanation(question, entries, text or None, model, "" if text else f"{model} gave an empty answer.")
