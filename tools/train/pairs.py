"""Judgements as the rows TRL's preference trainers read, and how strongly a model prefers the chosen answer.

`dpo_rows` / `kto_rows` turn preference rows (tools/dataset/model.py: Example.preference()) into TRL's
conversational shapes; `margins` scores held-out pairs: log p(chosen) - log p(rejected) under a model, the
number a preference round is meant to raise.
"""

from __future__ import annotations

from typing import Any

from tools.dataset.model import Example, Message, Preference
from tools.train.data import tokenize_example


def _turns(messages: list[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def judgements(rows: list[Example]) -> list[Preference]:
    """The judgement of every row that holds one."""
    return [p for p in (r.preference() for r in rows) if p is not None]


def dpo_rows(rows: list[Example]) -> list[dict[str, Any]]:
    """TRL's DPO rows: the prompt's turns, the chosen answer's and the rejected answer's."""
    return [{"prompt": _turns(p.prompt), "chosen": _turns(p.chosen), "rejected": _turns(p.rejected)}
            for p in judgements(rows) if p.paired]


def kto_rows(rows: list[Example]) -> list[dict[str, Any]]:
    """TRL's KTO rows: one per judged answer (a pair gives its chosen answer as good, its rejected one as bad)."""
    return [{"prompt": _turns(p.prompt), "completion": _turns(answer), "label": good}
            for p in judgements(rows) for answer, good in p.unpaired()]


def answer_logprob(model: Any, tokenizer: Any, prompt: list[Message], answer: list[Message], context: int) -> float:
    """log p(answer | prompt) under `model`, in the base model's chat template (the answer's tokens only)."""
    import torch

    from tools.train.loss import lm_loss

    # earlier answers in the prompt are read, not scored
    quiet = [m.model_copy(update={"weight": 0}) if m.role == "assistant" else m for m in prompt]
    tok = tokenize_example(tokenizer, Example(messages=quiet + answer), context)
    device = next(model.parameters()).device
    batch = {"input_ids": torch.tensor([tok.input_ids], device=device),
             "attention_mask": torch.ones(1, len(tok.input_ids), dtype=torch.long, device=device),
             "labels": torch.tensor([tok.labels], device=device)}
    with torch.no_grad():
        loss, n = lm_loss(model, batch, None)
    return -float(loss) * n


def margins(model: Any, tokenizer: Any, prefs: list[Preference], context: int = 4096) -> list[float]:
    """For each pair: how much likelier the model finds the chosen answer than the rejected one (log-ratio)."""
    was_training = model.training
    model.eval()
    try:
        return [answer_logprob(model, tokenizer, p.prompt, p.chosen, context)
                - answer_logprob(model, tokenizer, p.prompt, p.rejected, context) for p in prefs if p.paired]
    finally:
        model.train(was_training)
