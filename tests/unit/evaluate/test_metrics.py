"""Metrics against values worked out by hand."""

import math

import pytest

from tools.evaluate.metrics import (
    accuracy,
    bio_spans,
    confusion_matrix,
    macro_prf,
    per_class,
    perplexity,
    rouge_l,
    span_prf,
)

GOLD = ["a", "a", "b", "b", "c"]
PRED = ["a", "b", "b", "b", "a"]


def test_accuracy():
    assert accuracy(GOLD, PRED) == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="5 gold labels but 4 predictions"):
        accuracy(GOLD, PRED[:4])


def test_per_class_and_macro():
    pc = per_class(GOLD, PRED)
    # a: 1 right of 2 predicted, 1 of 2 found; b: 2 of 3 predicted, 2 of 2 found; c: never predicted
    assert (pc["a"].precision, pc["a"].recall, pc["a"].f1) == pytest.approx((0.5, 0.5, 0.5))
    assert (pc["b"].precision, pc["b"].recall, pc["b"].f1) == pytest.approx((2 / 3, 1.0, 0.8))
    assert (pc["c"].precision, pc["c"].recall, pc["c"].f1, pc["c"].support) == (0.0, 0.0, 0.0, 1)
    m = macro_prf(GOLD, PRED)
    assert (m.precision, m.recall, m.f1) == pytest.approx(((0.5 + 2 / 3) / 3, 1.5 / 3, 1.3 / 3))


def test_confusion_matrix_rows_gold_columns_predicted():
    assert confusion_matrix(GOLD, PRED, ["a", "b", "c"]) == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_bio_spans_and_stray_inside_tags():
    assert bio_spans(["B-PER", "I-PER", "O", "B-ORG"]) == {(0, 2, "PER"), (3, 4, "ORG")}
    assert bio_spans(["I-PER", "I-PER", "O"]) == {(0, 2, "PER")}
    assert bio_spans(["B-PER", "I-ORG"]) == {(0, 1, "PER"), (1, 2, "ORG")}
    assert bio_spans(["B-PER", "B-PER"]) == {(0, 1, "PER"), (1, 2, "PER")}


def test_span_prf_needs_exact_boundaries_and_type():
    gold = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-DATE", "I-DATE"]]
    pred = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-DATE", "O"]]
    r = span_prf(gold, pred)
    assert (r.precision, r.recall, r.f1, r.support) == pytest.approx((1 / 3, 1 / 3, 1 / 3, 3))


def test_perplexity_is_exp_of_loss():
    assert perplexity(math.log(4)) == pytest.approx(4.0)
    assert perplexity(0.0) == 1.0


def test_rouge_l():
    # LCS "the cat on the mat" = 5 of 6 words on both sides
    assert rouge_l("The cat sat on the mat.", "the cat is on the mat") == pytest.approx(5 / 6)
    # LCS 2: precision 2/4, recall 2/2
    assert rouge_l("a b c d", "b d") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert rouge_l("", "anything") == 0.0
    assert rouge_l("same words", "Same words") == 1.0
