"""Try your model: streamed answers from the local adapter and from Ollama, and ratings kept with the run."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tools.errors import ModelNotPulled, OllamaUnavailable, UsageError
from tools.evaluate.generate import generate, variant
from tools.evaluate.playground import RATINGS, LocalModel, load_ratings, rate, stream_ollama

PROMPT = "Write a user story for dark mode."
MANY = 120
"""Tokens a generation would write if nothing stopped it."""


@pytest.fixture(scope="module")
def local(tiny_run):
    return LocalModel(tiny_run, device="cpu")


def _visible(local, text: str) -> str:
    """The text without special tokens or spacing (a streamer and a one-shot decode space word pieces differently)."""
    ids = local.tokenizer(text, add_special_tokens=False)["input_ids"]
    return "".join(local.tokenizer.decode(ids, skip_special_tokens=True).split())


def test_the_tuned_answer_streams_in_pieces_and_matches_the_evaluation_answer(local):
    pieces = list(local.stream(PROMPT, max_new_tokens=24))
    assert len([p for p in pieces if p]) > 1  # it arrives as it is written, not all at once
    (expected,) = generate(local.model, local.tokenizer, [PROMPT], max_new_tokens=24)
    assert "".join("".join(pieces).split()) == _visible(local, expected.text)


def test_the_base_answer_comes_from_the_same_model_with_its_adapter_off(local):
    base = "".join("".join(local.stream(PROMPT, which="base", max_new_tokens=24)).split())
    with variant(local.model, "base"):
        (expected,) = generate(local.model, local.tokenizer, [PROMPT], max_new_tokens=24)
    assert base == _visible(local, expected.text)
    assert base != "".join("".join(local.stream(PROMPT, max_new_tokens=24)).split())  # the adapter changes it


def test_stopping_early_stops_the_generation_and_leaves_the_model_usable(local, monkeypatch):
    made: list[int] = []
    real = local.model.generate

    def generate_counting(**kw):
        out = real(**kw)
        made.append(out.shape[1] - kw["input_ids"].shape[1])  # the tokens this generation wrote
        return out

    def a_little_slow(*args):
        time.sleep(0.002)  # a step takes time, as on a real model: a generation left running would still be going

    hook = local.model.get_base_model().register_forward_hook(a_little_slow)
    monkeypatch.setattr(local.model, "generate", generate_counting)
    try:
        full = "".join(local.stream(PROMPT, max_new_tokens=MANY))
        assert made == [MANY], "this prompt makes the model write all MANY tokens when nobody stops it"
        before = set(threading.enumerate())
        stream = local.stream(PROMPT, max_new_tokens=MANY)
        next(stream)
        stream.close()  # the user pressed stop after the first piece
        # the generation itself ended, long before its MANY tokens, and no worker is left running
        assert made[1] < MANY // 2, made
        assert [t.name for t in set(threading.enumerate()) - before if t.is_alive()] == []
    finally:
        hook.remove()
    again = "".join(local.stream(PROMPT, max_new_tokens=MANY))
    assert again == full  # the model answers as before


def test_an_empty_prompt_and_a_classifier_run_get_plain_messages(local, tmp_path):
    from tools.train.config import TrainConfig, save_run_config

    with pytest.raises(UsageError, match="prompt is empty"):
        list(local.stream("   "))
    save_run_config(tmp_path, TrainConfig(model="minilm", data="tickets.jsonl", task="classification",
                                          labels=["bug", "feature"]))
    with pytest.raises(UsageError, match="picks labels, it does not write answers"):
        LocalModel(tmp_path, device="cpu")


def test_the_exported_model_streams_from_ollama(ollama):
    ollama.models.append("PM-UserStories-v1:latest")
    ollama.enqueue("As a designer, I want dark mode, so that night work is easier.")
    pieces = list(stream_ollama("PM-UserStories-v1", PROMPT, system="You write user stories."))
    assert len(pieces) > 1
    assert "".join(pieces) == "As a designer, I want dark mode, so that night work is easier."
    (req,) = ollama.requests_to("/api/chat")
    assert req.body["stream"] is True
    assert req.body["options"]["temperature"] == 0
    assert req.body["messages"][0] == {"role": "system", "content": "You write user stories."}


def test_ollama_failures_are_plain(ollama, monkeypatch):
    with pytest.raises(ModelNotPulled, match="'PM-Missing-v1' is not in your Ollama"):
        list(stream_ollama("PM-Missing-v1", PROMPT))
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    from tools.settings import get_settings

    get_settings.cache_clear()
    with pytest.raises(OllamaUnavailable, match="Ollama is not running"):
        list(stream_ollama("PM-UserStories-v1", PROMPT))


def test_ratings_are_appended_to_the_run_and_read_back(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rate(run, PROMPT, "As a user, I want dark mode.", 4)
    rate(run, PROMPT, "As a user, I want dark mode.", "down", source="ollama:PM-UserStories-v1")
    rate(run, PROMPT, "Dark mode is nice.", "Up", which="base")
    got = load_ratings(run)
    assert [(r.score, r.thumbs, r.variant, r.source) for r in got] == [
        (4, None, "tuned", "local"), (1, "down", "tuned", "ollama:PM-UserStories-v1"), (5, "up", "base", "local")]
    lines = (run / RATINGS).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0])["prompt"] == PROMPT


def test_a_bad_rating_is_refused_and_a_torn_line_is_skipped(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for bad in (0, 6, "great"):
        with pytest.raises(UsageError, match="Give 1 to 5 stars, or thumbs up / down"):
            rate(run, PROMPT, "x", bad)
    rate(run, PROMPT, "x", 3)
    with open(run / RATINGS, "a", encoding="utf-8") as f:
        f.write('{"prompt": "cut sho')
    assert [r.score for r in load_ratings(run)] == [3]
    assert load_ratings(tmp_path / "never-rated") == []
