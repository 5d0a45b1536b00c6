"""Held-out numbers for base and tuned: validation loss and perplexity, or classifier / tagger metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tools.evaluate.generate import variant
from tools.evaluate.metrics import (
    accuracy,
    confusion_matrix,
    macro_prf,
    majority_baseline,
    majority_label,
    per_class,
    perplexity,
    span_prf,
)


def causal_loss(model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], *, context: int,
                batch_size: int = 8, precision: str = "fp32") -> dict[str, float] | None:
    """Mean loss per answer token over the validation conversations (only assistant tokens count, like training),
    in the arithmetic training used for the run's `precision` (bf16 autocast where it ran under it)."""
    import torch

    from tools.train.batching import padded_batch
    from tools.train.data import tokenize_chat
    from tools.train.loss import lm_loss
    from tools.train.speed import autocast_on, bf16_autocast

    examples = [e for e in (tokenize_chat(tokenizer, c, context) for c in conversations) if e.n_label_tokens]
    if not examples:
        return None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total, count = 0.0, 0
    device = str(model.device)
    cast = autocast_on(precision, device, model)
    with torch.no_grad(), bf16_autocast(cast, device):
        for i in range(0, len(examples), batch_size):
            batch = {k: v.to(model.device) for k, v in padded_batch(examples[i: i + batch_size], pad).items()}
            loss, n = lm_loss(model, batch, chunk_size=1024)
            total += float(loss) * n
            count += n
    mean = total / max(1, count)
    return {"val_loss": mean, "perplexity": perplexity(mean), "tokens": count}


def predict_labels(model: Any, tokenizer: Any, texts: list[str], *, batch_size: int = 32) -> list[str]:
    """The sequence classifier's label for each text."""
    import torch

    id2label = model.config.id2label
    out: list[str] = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i: i + batch_size], truncation=True, padding=True, return_tensors="pt")
            logits = model(**{k: v.to(model.device) for k, v in enc.items()}).logits
            out += [id2label[int(j)] for j in logits.argmax(-1).tolist()]
    return out


def predict_tags(model: Any, tokenizer: Any, sentences: list[list[str]], *, batch_size: int = 16) -> list[list[str]]:
    """The token classifier's BIO tag for each word (read from the word's first sub-token)."""
    import torch

    id2label = model.config.id2label
    out: list[list[str]] = []
    with torch.no_grad():
        for i in range(0, len(sentences), batch_size):
            chunk = sentences[i: i + batch_size]
            enc = tokenizer(chunk, is_split_into_words=True, truncation=True, padding=True, return_tensors="pt")
            pred = model(**{k: v.to(model.device) for k, v in enc.items()}).logits.argmax(-1).tolist()
            for row, words in enumerate(chunk):
                tags = ["O"] * len(words)
                seen = set()
                for pos, w in enumerate(enc.word_ids(row)):
                    if w is not None and w not in seen:
                        seen.add(w)
                        tags[w] = id2label[int(pred[row][pos])]
                out.append(tags)
    return out


def classification_metrics(gold: list[str], pred: list[str], labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro precision / recall / F1, per-label numbers and the confusion matrix."""
    # macro over the labels that occur (in the answers or the predictions), as training reports it:
    # a label absent from a small validation split would otherwise count as a zero
    m = macro_prf(gold, pred)
    return {
        "n": len(gold), "correct": sum(g == p for g, p in zip(gold, pred, strict=True)),
        "accuracy": accuracy(gold, pred), "precision": m.precision, "recall": m.recall, "f1": m.f1,
        "per_label": {k: vars(v) for k, v in per_class(gold, pred, labels).items()},
        "labels": labels, "confusion": confusion_matrix(gold, pred, labels),
    }


def tagging_metrics(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    """Span-level entity precision / recall / F1 and token accuracy."""
    s = span_prf(gold, pred)
    flat_g = [t for row in gold for t in row]
    flat_p = [t for row in pred for t in row]
    return {"n": len(gold), "precision": s.precision, "recall": s.recall, "f1": s.f1, "entities": s.support,
            "token_accuracy": accuracy(flat_g, flat_p)}


def heldout(model: Any, tokenizer: Any, task: str, validation: list[Any], *, labels: list[str], context: int,
            train: Sequence[Any] = (), precision: str = "fp32") -> dict[str, Any]:
    """Base and tuned numbers on the validation rows ({} when the run kept none back); a causal LM's loss in the
    arithmetic the run's `precision` trained in.

    A classifier's numbers come with `majority`: the score of always answering the commonest training label.
    """
    result: dict[str, Any] = {}
    if not validation:
        return result
    if task == "classification":
        gold = [str(ex.label) for ex in validation]
        common = majority_label([str(ex.label) for ex in train]) or majority_label(gold)
        if common is not None:
            result["majority"] = majority_baseline(common, gold)
    for which in ("base", "tuned"):
        with variant(model, which):
            if task == "causal":
                convs = [[{"role": m.role, "content": m.content} for m in ex.messages] for ex in validation]
                numbers = causal_loss(model, tokenizer, convs, context=context, precision=precision)
                if numbers is not None:
                    result[which] = numbers
            elif task == "classification":
                gold = [str(ex.label) for ex in validation]
                result[which] = classification_metrics(gold, predict_labels(model, tokenizer,
                                                                            [ex.text for ex in validation]), labels)
            else:
                sents = [list(ex.tokens or []) for ex in validation]
                result[which] = tagging_metrics([list(ex.tags or []) for ex in validation],
                                                predict_tags(model, tokenizer, sents))
    return result
