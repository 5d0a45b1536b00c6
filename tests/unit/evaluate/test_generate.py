"""Generation through Ollama (exported models) and the entity tagger's word-level predictions."""

import pytest

from tools.errors import OllamaUnavailable
from tools.evaluate.generate import ollama_generator


def test_ollama_generator_answers_with_each_model_and_sees_runaway_answers(ollama):
    ollama.models += ["PM-General-v1:latest"]
    ollama.enqueue({"content": "As a user I want", "done_reason": "length"}, "A short answer.")
    gen = ollama_generator({"base": "phi4-mini", "tuned": "PM-General-v1"}, max_new_tokens=40)
    (tuned,) = gen(["Write a user story"], "tuned")
    (base,) = gen(["Write a user story"], "base")
    assert (tuned.text, tuned.stopped) == ("As a user I want", False)
    assert (base.text, base.stopped) == ("A short answer.", True)
    bodies = [r.body for r in ollama.requests_to("/api/chat")]
    assert [b["model"] for b in bodies] == ["PM-General-v1", "phi4-mini"]
    assert bodies[0]["options"]["temperature"] == 0
    assert bodies[0]["options"]["num_predict"] == 40


def test_ollama_generator_without_ollama_is_a_plain_error():
    with pytest.raises(OllamaUnavailable, match="Ollama is not running"):
        ollama_generator({"base": "phi4-mini", "tuned": "x"})(["hi"], "base")


@pytest.mark.slow
def test_tagger_predicts_one_tag_per_word_and_scores_spans():
    from tools.dataset.model import Example
    from tools.evaluate.heldout import heldout, predict_tags
    from tools.train.modeling import load_base

    labels = ["O", "B-PER", "I-PER", "B-ORG"]
    model, tok = load_base("minilm", "token", labels=labels, precision="fp32")
    model.eval()
    sents = [["Ada", "Lovelace", "joined", "Acme"], ["Ship", "it", "by", "Friday", "please"]]
    tags = predict_tags(model, tok, sents)
    assert [len(t) for t in tags] == [4, 5]
    assert all(t in labels for row in tags for t in row)
    rows = [Example(tokens=s, tags=["B-PER", "I-PER", "O", "B-ORG"] if i == 0 else ["O"] * 5)
            for i, s in enumerate(sents)]
    numbers = heldout(model, tok, "token", rows, labels=labels, context=64)
    # without an adapter base and tuned are the same model, so their numbers must agree
    assert numbers["base"] == numbers["tuned"]
    assert numbers["tuned"]["entities"] == 2
