"""Rubric judging through the Ollama test double: structured output, re-ask, blinding, agreement with the user."""

import json

import pytest

from tools.errors import ModelNotPulled, OllamaUnavailable, StructuredOutputError, UsageError
from tools.evaluate.agreement import agreement, load_user_scores, record_user_scores, weighted_kappa
from tools.evaluate.judge import (
    BAD_SHAPE,
    COPIED,
    CRITERIA,
    LOOPING,
    NO_REASONS,
    NUM_PREDICT,
    OllamaStructured,
    RubricScores,
    score_all,
    score_answer,
)
from tools.evaluate.suite import BUILTIN, TestPrompt


@pytest.fixture
def judge(ollama):
    """The test double with a judge model pulled."""
    ollama.models.append("judge-model:latest")
    return ollama


def scores_json(**overrides):
    return json.dumps({c: {"score": overrides.get(c, 4), "justification": f"{c} is fine"} for c in CRITERIA})


def test_score_answer_sends_the_schema_and_parses_the_scores(judge):
    judge.enqueue(scores_json(tone=2))
    r = score_answer(OllamaStructured("judge-model"), BUILTIN[0], "As a user I want ...")
    assert r.scores() == {"accuracy": 4, "format": 4, "relevance": 4, "completeness": 4, "tone": 2}
    assert r.tone.justification == "tone is fine"
    body = judge.requests_to("/api/chat")[0].body
    assert body["format"] == RubricScores.model_json_schema()
    assert body["options"]["temperature"] == 0
    # bounded: never more tokens than five short justifications need
    assert body["options"]["num_predict"] == NUM_PREDICT


def test_bad_json_is_asked_again_then_accepted(judge):
    judge.enqueue('{"accuracy": {"score": 9, "justification": "x"}}', scores_json())
    r = score_answer(OllamaStructured("judge-model"), BUILTIN[0], "answer")
    assert r.mean() == 4
    second = judge.requests_to("/api/chat")[1].body["messages"]
    assert "did not fit" in second[-1]["content"]


def test_persistently_bad_output_raises_a_plain_error(judge):
    judge.enqueue("not json", "still not json")
    with pytest.raises(StructuredOutputError, match="did not return valid scores"):
        score_answer(OllamaStructured("judge-model"), BUILTIN[0], "answer")


def test_missing_judge_model_is_a_plain_error(ollama):
    with pytest.raises(ModelNotPulled, match="ollama pull no-such-model"):
        score_answer(OllamaStructured("no-such-model"), BUILTIN[0], "answer")


def test_no_ollama_is_a_plain_error():
    with pytest.raises(OllamaUnavailable):
        score_answer(OllamaStructured("judge-model"), BUILTIN[0], "answer")


def test_each_answer_is_judged_alone_and_blinded(judge):
    judge.responder = lambda body: scores_json(format=5 if "Acceptance" in body["messages"][-1]["content"] else 2)
    p = TestPrompt(id="s", prompt="Write a user story for login.", format="user_story")
    tuned = "As a user I want to log in so that I see my data. Acceptance criteria: - works"
    base = "Login is a feature."
    out = score_all(OllamaStructured("judge-model"), [(p, {"base": base, "tuned": tuned})])
    assert out.scores[("s", "tuned")].format.score == 5
    assert out.scores[("s", "base")].format.score == 2
    assert out.left_out == {}
    reqs = judge.requests_to("/api/chat")
    assert len(reqs) == 2
    for r in reqs:
        text = " ".join(m["content"] for m in r.body["messages"]).lower()
        # one answer per request, and nothing tells the judge which model wrote it
        assert (tuned.lower() in text) != (base.lower() in text)
        assert "tuned" not in text
        assert "base model" not in text


def test_judging_order_is_shuffled_but_reproducible():
    class Recorder:
        def __init__(self):
            self.seen = []

        def structured(self, prompt, schema, *, system=None):
            self.seen.append(prompt.split("<<<\n")[1].split("\n>>>")[0])
            return schema.model_validate_json(scores_json())

    prompts = [TestPrompt(id=f"p{i}", prompt=f"q{i}") for i in range(6)]
    items = [(p, {"base": f"base-{p.id}", "tuned": f"tuned-{p.id}"}) for p in prompts]
    a, b = Recorder(), Recorder()
    score_all(a, items, seed=1)
    score_all(b, items, seed=1)
    assert a.seen == b.seen
    assert len(a.seen) == 12
    firsts = [s.split("-")[0] for s in a.seen[::2]]
    assert a.seen != [f"{v}-p{i}" for i in range(6) for v in ("base", "tuned")]
    assert len(set(firsts)) == 2


def test_kappa_hand_computed():
    assert weighted_kappa([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == 1.0
    # observed weighted disagreement 1/16, expected 21/48 -> 1 - 3/21
    assert weighted_kappa([1, 2, 3], [1, 2, 4]) == pytest.approx(6 / 7)
    assert weighted_kappa([3, 3], [3, 3]) == 1.0


def test_user_scores_round_trip_and_agreement(tmp_path):
    record_user_scores(tmp_path, "p1", "tuned", {"tone": 2, "format": 5})
    record_user_scores(tmp_path, "p1", "tuned", {"tone": 4})
    user = load_user_scores(tmp_path)
    assert user == {("p1", "tuned", "tone"): 4, ("p1", "tuned", "format"): 5}
    judge = {("p1", "tuned", "tone"): 3, ("p1", "tuned", "format"): 5, ("p2", "base", "tone"): 1}
    ag = agreement(judge, user)
    assert ag["n"] == 2
    assert ag["mean_abs_diff"] == 0.5
    assert ag["exact"] == 0.5
    assert ag["within_one"] == 1.0
    assert agreement(judge, {}) is None


def test_user_scores_are_validated(tmp_path):
    with pytest.raises(UsageError) as exc:
        record_user_scores(tmp_path, "p1", "tuned", {"tone": 7, "style": 3})
    assert "tone = 7" in str(exc.value)
    assert "'style' is not a rubric criterion" in str(exc.value)


ANSWER = ("As a registered user I want to reset my password from the sign-in page so that I can get back into my "
          "account without calling support. Acceptance criteria: the link expires after one hour.")
PROMPTS = [TestPrompt(id=f"p{i}", prompt=f"Write a user story for feature {i}.", format="user_story") for i in range(3)]


def hostile(justification, score=4):
    return json.dumps({c: {"score": score, "justification": justification} for c in CRITERIA})


@pytest.mark.parametrize(("reply", "why"), [
    (hostile("5", score=5), NO_REASONS),
    (hostile("Good.", score=5), NO_REASONS),
    (hostile("1.1.1.2.3.4.1.1.1.2.3.4.1.1.1.2.3.4"), NO_REASONS),
    (hostile(ANSWER[:160]), COPIED),
    (hostile("good answer " * 12), LOOPING),
], ids=["5/5 with '5'", "5/5 with a word", "numbers", "a copy of the answer", "a loop"])
def test_a_nonsense_judgement_is_left_out_with_its_reason(judge, reply, why):
    judge.enqueue(reply, scores_json())
    out = score_all(OllamaStructured("judge-model"), [(PROMPTS[0], {"tuned": ANSWER, "base": ANSWER + " Done."})])
    # one of the two answers got the nonsense, the other a real judgement: only the real one is kept
    assert list(out.left_out.values()) == [why]
    assert len(out.scores) == 1
    assert out.reasons() == {why: 1}


def test_an_invented_key_is_asked_again_then_left_out(judge):
    invented = json.loads(scores_json())
    invented["helpfulness"] = {"score": 5, "justification": "It is helpful to the user."}
    judge.enqueue(json.dumps(invented), json.dumps(invented), scores_json())
    out = score_all(OllamaStructured("judge-model"), [(PROMPTS[0], {"tuned": ANSWER, "base": ANSWER + " Done."})])
    assert list(out.left_out.values()) == [BAD_SHAPE]
    assert len(out.scores) == 1


def test_a_slow_reply_is_given_up_on_after_the_timeout(judge, monkeypatch):
    import time

    # the timeout is the module's setting; here a tenth of a second instead of two minutes
    monkeypatch.setattr("tools.evaluate.judge.TIMEOUT_S", 0.1)
    judge.enqueue({"content": scores_json(), "delay_s": 5}, scores_json())
    started = time.monotonic()
    out = score_all(OllamaStructured("judge-model"), [(PROMPTS[0], {"tuned": ANSWER, "base": ANSWER + " Done."})])
    assert time.monotonic() - started < 4  # nobody waited for the slow reply
    assert list(out.left_out.values()) == ["it did not reply in time"]
    assert len(out.scores) == 1


def test_a_judge_that_keeps_failing_is_not_asked_again(judge):
    judge.responder = lambda body: hostile("5", score=5)
    items = [(p, {"tuned": ANSWER, "base": ANSWER + " Done."}) for p in PROMPTS]
    out = score_all(OllamaStructured("judge-model"), items)
    assert len(judge.requests_to("/api/chat")) == 3  # three nonsense replies in a row, then no more asking
    assert out.scores == {}
    assert len(out.left_out) == 6
    assert out.reasons() == {NO_REASONS: 3, "the judge failed 3 times in a row, so it was not asked again": 3}


def test_a_missing_judge_model_leaves_every_score_out_after_one_try(ollama):
    out = score_all(OllamaStructured("no-such-model"), [(p, {"tuned": ANSWER, "base": "x"}) for p in PROMPTS])
    assert len(ollama.requests_to("/api/chat")) == 1
    assert out.reasons() == {"the judge model is not in Ollama": 6}
