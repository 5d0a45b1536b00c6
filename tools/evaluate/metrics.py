"""Evaluation metrics, pure and dependency-free: classification, entity spans, perplexity, ROUGE-L."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from tools.dataset.spans import bio_spans


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 (each 0..1) and the counts behind them."""

    precision: float
    recall: float
    f1: float
    support: int
    """How many gold items (examples of the class, or gold entity spans) there were."""


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Share of predictions equal to the gold label."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold) if gold else 0.0


def per_class(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None) -> dict[str, PRF]:
    """Precision / recall / F1 of each label (a label never predicted has precision 0)."""
    labels = list(labels) if labels is not None else sorted(set(gold) | set(pred))
    out = {}
    for lab in labels:
        tp = sum(g == lab and p == lab for g, p in zip(gold, pred, strict=True))
        n_pred = sum(p == lab for p in pred)
        n_gold = sum(g == lab for g in gold)
        prec = tp / n_pred if n_pred else 0.0
        rec = tp / n_gold if n_gold else 0.0
        out[lab] = PRF(prec, rec, _f1(prec, rec), n_gold)
    return out


def macro_prf(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None) -> PRF:
    """Unweighted mean over labels: a rare class counts as much as a common one."""
    pc = per_class(gold, pred, labels)
    n = len(pc) or 1
    return PRF(sum(x.precision for x in pc.values()) / n, sum(x.recall for x in pc.values()) / n,
               sum(x.f1 for x in pc.values()) / n, len(gold))


def majority_label(train_labels: Sequence[str]) -> str | None:
    """The most common training label (ties go to the first in name order): what a model that learned nothing
    but the label counts would always answer."""
    counts = Counter(train_labels)
    return min(counts, key=lambda lab: (-counts[lab], lab)) if counts else None


def majority_baseline(label: str, gold: Sequence[str]) -> dict[str, float | str]:
    """Accuracy and macro precision / recall / F1 of always answering `label`: the score a classifier must beat."""
    pred = [label] * len(gold)
    m = macro_prf(gold, pred)
    return {"label": label, "accuracy": accuracy(gold, pred), "precision": m.precision, "recall": m.recall,
            "f1": m.f1}


def confusion_matrix(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """Rows are the gold label, columns the predicted one, in `labels` order."""
    index = {lab: i for i, lab in enumerate(labels)}
    m = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred, strict=True):
        if g in index and p in index:
            m[index[g]][index[p]] += 1
    return m


def span_prf(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> PRF:
    """Span-level entity P/R/F1 over sentences: a span counts only if its boundaries and type match exactly."""
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred, strict=True):
        gs, ps = bio_spans(g), bio_spans(p)
        tp += len(gs & ps)
        n_gold += len(gs)
        n_pred += len(ps)
    prec = tp / n_pred if n_pred else 0.0
    rec = tp / n_gold if n_gold else 0.0
    return PRF(prec, rec, _f1(prec, rec), n_gold)


def perplexity(mean_loss: float) -> float:
    """exp(mean cross-entropy per token): how many tokens the model hesitates between, on average."""
    return math.exp(min(mean_loss, 700.0))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 on lower-cased words: longest common subsequence against the reference answer."""
    c, r = _words(candidate), _words(reference)
    lcs = _lcs(c, r)
    if not lcs:
        return 0.0
    return _f1(lcs / len(c), lcs / len(r))
