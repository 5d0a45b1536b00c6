"""Verification after create, on scripted good and bad replies from the Ollama test double."""

from __future__ import annotations

import pytest

from tests.fakes.ollama_double import OllamaDouble
from tools.errors import ModelNotPulled
from tools.export.verify import PROBES, TunedAnswer, ask_ollama, similarity, stop_budget, verify_replies

STOPS = ["<|im_end|>"]
GOOD_TEXT = ["As a user, I want to reset my password.", "OKRs are goals; KPIs are health metrics.",
             "Hi all, we are two weeks late because of the payment review."]
GOOD = [TunedAnswer(t, len(t.split()) + 1, stopped=True) for t in GOOD_TEXT]


def words(text: str) -> int:
    """A word-level stand-in for the model's tokenizer."""
    return len(text.split())


def checks_by_name(checks: list) -> dict:
    return {c.name: c for c in checks}


def test_good_replies_pass_every_check(ollama: OllamaDouble) -> None:
    ollama.models.append("pm:latest")
    ollama.enqueue(*GOOD_TEXT)
    replies = ask_ollama("pm", PROBES)
    assert [r.content for r in replies] == GOOD_TEXT
    assert all(r.done_reason == "stop" for r in replies)
    checks = verify_replies(replies, STOPS, expected=GOOD, exact=True)
    assert [c.name for c in checks] == ["answers", "stops", "no_template_text", "matches_tuned"]
    assert all(c.ok and not c.fix for c in checks)
    # greedy, one user turn, a probe-length cap: what the check relies on
    body = ollama.requests_to("/api/chat")[0].body
    assert body["options"]["temperature"] == 0
    assert body["options"]["num_predict"] > 0
    assert "repeat_penalty" not in body["options"]  # Ollama's own default, as `ollama run` answers
    assert body["messages"] == [{"role": "user", "content": PROBES[0]}]


def test_a_word_for_word_comparison_asks_for_plain_greedy_answers(ollama: OllamaDouble) -> None:
    ollama.models.append("pm:latest")
    ollama.enqueue(*GOOD_TEXT)
    ask_ollama("pm", PROBES, plain=True)
    assert all(r.body["options"]["repeat_penalty"] == 1.0 for r in ollama.requests_to("/api/chat"))


def test_a_model_that_never_stops_is_caught_with_the_stop_fix(ollama: OllamaDouble) -> None:
    ollama.models.append("pm:latest")
    ollama.enqueue(GOOD_TEXT[0], {"content": "OKRs " * 300, "done_reason": "length"}, GOOD_TEXT[2])
    checks = checks_by_name(verify_replies(ask_ollama("pm", PROBES), STOPS))
    assert not checks["stops"].ok
    assert "never stopped on 1 of 3" in checks["stops"].message
    assert "the length limit (after " in checks["stops"].message
    assert "done_reason" not in checks["stops"].message  # Ollama's field names are not for the user
    assert "PARAMETER stop" in checks["stops"].fix
    assert "<|im_end|>" in checks["stops"].fix
    assert checks["answers"].ok
    assert "matches_tuned" not in checks


def test_template_leakage_names_the_markers(ollama: OllamaDouble) -> None:
    ollama.models.append("pm:latest")
    ollama.enqueue("Sure.<|im_end|>\n<|im_start|>user\nmore", GOOD_TEXT[1], "[INST] hi [/INST]")
    check = checks_by_name(verify_replies(ask_ollama("pm", PROBES), STOPS))["no_template_text"]
    assert not check.ok
    for marker in ("<|im_end|>", "<|im_start|>", "[INST]", "[/INST]"):
        assert marker in check.message
    assert "TEMPLATE" in check.fix
    assert "PARAMETER stop" in check.fix


def test_empty_answers_are_reported(ollama: OllamaDouble) -> None:
    ollama.models.append("pm:latest")
    ollama.enqueue("", "   ", GOOD_TEXT[2])
    check = checks_by_name(verify_replies(ask_ollama("pm", PROBES), STOPS))["answers"]
    assert not check.ok
    assert "no answer to 2 of 3" in check.message
    assert "TEMPLATE" in check.fix


def test_match_is_exact_for_f16_and_similar_enough_for_quantised(ollama: OllamaDouble) -> None:
    ollama.models.append("pm:latest")
    close = [g.replace("reset", "change") for g in GOOD_TEXT]
    ollama.enqueue(*close, *close)
    exact = checks_by_name(verify_replies(ask_ollama("pm", PROBES), STOPS, GOOD, exact=True))["matches_tuned"]
    loose = checks_by_name(verify_replies(ask_ollama("pm", PROBES), STOPS, GOOD, exact=False))["matches_tuned"]
    assert not exact.ok
    assert "1 of 3" in exact.message
    assert "--quantize" in exact.fix
    assert loose.ok
    ollama.enqueue("Bananas are yellow.")
    unrelated = checks_by_name(verify_replies(ask_ollama("pm", PROBES[:1]), STOPS, GOOD[:1]))["matches_tuned"]
    assert not unrelated.ok
    assert "lowest similarity 0%" in unrelated.message


def test_a_quantised_model_may_drift_on_one_prompt_in_three_but_a_lost_adapter_drifts_on_all(
        ollama: OllamaDouble) -> None:
    ollama.models.append("pm:latest")
    ollama.enqueue(GOOD_TEXT[0], "Bananas are yellow.", GOOD_TEXT[2])
    one_off = checks_by_name(verify_replies(ask_ollama("pm", PROBES), STOPS, GOOD))["matches_tuned"]
    assert one_off.ok
    assert "went its own way" in one_off.message
    ollama.enqueue("Bananas are yellow.", "Apples are red.", "Plums are blue.")
    lost = checks_by_name(verify_replies(ask_ollama("pm", PROBES), STOPS, GOOD))["matches_tuned"]
    assert not lost.ok
    assert "3 of 3" in lost.message


def test_a_quantised_reply_follows_the_tuned_answer_by_its_opening_or_layout() -> None:
    from tools.export.verify import follows

    tuned = ("**User story**\nAs a new user, I want to reset my password.\n\n**Acceptance criteria**\n- a link\n"
             "- expires")
    drifted = ("**User story**\nAs someone who forgot it, I want a reset without support.\n\n**Acceptance criteria**\n"
               "- it works")
    assert follows(drifted, tuned)  # other words, as quantised weights write them: the same opening and layout
    laid_out = "**Reset**\nWhat it does.\n\n**Checks**\n- one\n- two"
    assert follows(laid_out, tuned)
    # the base without its adapter: prose, opening otherwise
    assert not follows("A password reset lets users regain access to their account by email.", tuned)
    assert follows("The same words here", "The same words here too")


def test_similarity_is_word_level() -> None:
    assert similarity("a b c d", "a b c d") == 1.0
    assert similarity("a b c d", "w x y z") == 0.0
    assert 0.7 < similarity("as a user I want x", "as a user I want y") < 1.0


def test_missing_model_surfaces_as_not_in_ollama(ollama: OllamaDouble) -> None:
    with pytest.raises(ModelNotPulled, match="'ghost'"):
        ask_ollama("ghost", PROBES[:1])


def test_stopping_is_judged_against_the_tuned_models_own_length(ollama: OllamaDouble) -> None:
    ollama.models.append("pm:latest")
    long_answer = TunedAnswer("step " * 400, 401, stopped=True)
    # a long but finished answer within its budget passes; 256 tokens is no limit any more
    ollama.enqueue({"content": "step " * 400, "done_reason": "stop", "eval_count": 401})
    replies = ask_ollama("pm", PROBES[:1], budgets=[stop_budget(long_answer.tokens)])
    assert ollama.requests_to("/api/chat")[-1].body["options"]["num_predict"] == stop_budget(401)
    assert checks_by_name(verify_replies(replies, STOPS, [long_answer], count_tokens=words))["stops"].ok
    # a short answer from the tuned model, and the export runs on until the budget: caught, with the numbers
    ollama.enqueue({"content": "As a user " * 30, "done_reason": "length", "eval_count": stop_budget(10)})
    short = TunedAnswer("As a user", 10, stopped=True)
    check = checks_by_name(verify_replies(ask_ollama("pm", PROBES[:1], budgets=[stop_budget(10)]), STOPS,
                                          [short], count_tokens=words))["stops"]
    assert not check.ok
    assert f"{stop_budget(10)} tokens" in check.message
    assert "PARAMETER stop" in check.fix


def test_turns_that_show_as_no_text_are_caught(ollama: OllamaDouble) -> None:
    ollama.models.append("pm:latest")
    # Ollama hides control tokens: a model rambling through new turns returns little text for many tokens
    ollama.enqueue({"content": GOOD_TEXT[0], "done_reason": "stop", "eval_count": 60},
                   *({"content": t, "done_reason": "stop", "eval_count": words(t) + 1} for t in GOOD_TEXT[1:]))
    checks = checks_by_name(verify_replies(ask_ollama("pm", PROBES), STOPS, GOOD, count_tokens=words))
    hidden = checks["no_hidden_turns"]
    assert not hidden.ok
    assert "1 of 3" in hidden.message
    assert "show as no text" in hidden.message
    assert "<|im_end|>" in hidden.fix
    assert checks["no_template_text"].ok


def test_an_end_token_missing_from_the_template_and_stops_is_named_in_the_fix(ollama: OllamaDouble) -> None:
    from tools.export.templates import TEMPLATES

    ollama.models.append("pm:latest")
    # exported with phi3's TEMPLATE and stops while the model ends its answers with ChatML's <|im_end|>: Ollama
    # hides that token as a control token, nothing stops on it, and the model talks on through unseen turns
    ollama.responder = lambda body: {"content": GOOD_TEXT[0], "done_reason": "length",
                                     "eval_count": body["options"]["num_predict"]}
    replies = ask_ollama("pm", PROBES, budgets=[stop_budget(e.tokens) for e in GOOD])
    checks = checks_by_name(verify_replies(replies, ["<|end|>", "<|endoftext|>"], GOOD, count_tokens=words,
                                           end_token="<|im_end|>", template=TEMPLATES["phi3"]))
    stops, hidden = checks["stops"], checks["no_hidden_turns"]
    assert not stops.ok
    assert "never stopped on 3 of 3" in stops.message
    for check in (stops, hidden):
        assert "ends its answers with <|im_end|>" in check.fix
        assert "the `PARAMETER stop` lines and the TEMPLATE of the Modelfile never use it" in check.fix
        assert "<|end|>, <|endoftext|>" in check.fix
        assert 'PARAMETER stop "<|im_end|>"' in check.fix
    # with the end token in both, the usual advice stays
    ok_template = verify_replies(replies, STOPS, GOOD, end_token="<|im_end|>", template=TEMPLATES["chatml"])
    assert "ends its answers with" not in checks_by_name(ok_template)["stops"].fix
