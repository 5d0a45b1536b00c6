"""The report and its verdict from scripted answers (no model): numbers, side by side, charts, comparison."""

import json
import math

import pytest

from tools.dataset.model import Example
from tools.evaluate.agreement import record_user_scores
from tools.evaluate.compare import compare_reports
from tools.evaluate.generate import Generation
from tools.evaluate.heldout import classification_metrics
from tools.evaluate.judge import CRITERIA, OllamaStructured
from tools.evaluate.metrics import majority_baseline, majority_label
from tools.evaluate.report import render_markdown, write_report
from tools.evaluate.run import build_report, refresh_agreement, validation_prompts
from tools.evaluate.suite import BUILTIN

STORY = "As a user\nI want to {x}\nSo that I save time\n\nAcceptance criteria:\n- it works\n- it is fast"
GOOD = {
    "format_consistency": STORY,
    "domain_knowledge": "OKRs set goals; KPIs measure health. A roadmap plans; a backlog lists work.",
    "contextual_understanding": "We are 2 weeks behind. Next steps: we will ship on May 3.",
    "creative_problem_solving": "1. checklist\n2. videos\n3. templates\n4. in-app tips\n5. office hours",
    "validation": STORY,
}


def events(n=40):
    evs = [{"type": "start", "config": {"batch_size": 4}, "n_examples": 60, "device": "cpu"}]
    for i in range(1, n + 1):
        evs.append({"type": "step", "step": i, "epoch": i / 20, "loss": 2 * math.exp(-i / 15) + 0.5, "lr": 2e-4,
                    "tokens_per_s": 900.0, "eta_s": n - i, "peak_mem_mb": 500})
        if i % 10 == 0:
            evs.append({"type": "eval", "step": i, "val_loss": 2 * math.exp(-i / 15) + 0.7})
    return evs + [{"type": "done", "adapter": "adapter", "metrics": {}}]


def scripted(bad_categories=()):
    """Tuned answers well in every category except `bad_categories`; base answers vaguely and never stops."""
    by_prompt = {p.prompt: p.category for p in BUILTIN}

    def generate(prompts, variant):
        out = []
        for p in prompts:
            cat = by_prompt.get(p, "validation")
            if variant == "tuned" and cat not in bad_categories:
                out.append(Generation(GOOD[cat].format(x="do it"), True, 30))
            else:
                out.append(Generation("Sure! Here is some text about that topic", variant == "tuned", 12))
        return out

    return generate


VALIDATION = [Example.chat(("user", f"Write a user story for feature {i}"), ("assistant", STORY.format(x=f"use {i}")),
                           line=i) for i in range(1, 4)]
HELD = {"base": {"val_loss": 5.0, "perplexity": math.exp(5.0), "tokens": 90},
        "tuned": {"val_loss": 3.0, "perplexity": math.exp(3.0), "tokens": 90}}


def test_validation_prompts_take_the_answer_as_reference_and_its_format():
    ps = validation_prompts(VALIDATION)
    assert [p.id for p in ps] == ["validation-1", "validation-2", "validation-3"]
    assert all(p.format == "user_story" and "As a user" in p.reference for p in ps)


def test_report_counts_and_verdict_from_side_by_side_answers(tmp_path):
    prompts = [*BUILTIN, *validation_prompts(VALIDATION)]
    r = build_report(tmp_path, model="tiny-random", task="causal", events=events(), heldout=HELD,
                     prompts=prompts, generate=scripted())
    s = r["summary"]
    assert s["tuned"]["user_story_pass"] == 5
    assert s["base"]["user_story_pass"] == 0
    assert s["tuned"]["all_checks_pass"] == 9
    assert s["base"]["stopped"] == 0
    assert s["tuned"]["rouge_l"] > s["base"]["rouge_l"]
    v = r["verdict"]
    assert "loss fell from 5.00 to 3.00" in v
    assert "follows your user-story format in 5 of 5 prompts (base: 0 of 5)" in v
    assert "did not get worse in any category" in v
    # what the user asked for comes first: the format, then closeness to their own answers, then the loss
    assert v.startswith("Format: the tuned model writes the asked format in 7 of 7 prompts (base: 0 of 7).")
    assert v.index("Format:") < v.index("ROUGE-L") < v.index("loss fell")
    assert "tiny-random" in v
    row = r["prompts"][0]
    assert row["tuned"]["answer"].startswith("As a user")
    assert row["base"]["answer"].startswith("Sure!")
    assert r["diagnoses"] == []


def test_verdict_says_when_training_has_barely_changed_the_model(tmp_path):
    held = {"base": {"val_loss": 10.7, "perplexity": 44000.0}, "tuned": {"val_loss": 10.5, "perplexity": 36000.0}}
    r = build_report(tmp_path, model="m", task="causal", events=[], heldout=held, prompts=[], generate=None)
    assert "barely changed the model" in r["verdict"]
    r = build_report(tmp_path, model="m", task="causal", events=[], heldout=HELD, prompts=[], generate=None)
    assert "barely" not in r["verdict"]


def test_a_loss_that_moved_little_is_no_alarm_when_the_format_was_learned():
    from tools.evaluate.verdict import format_gained, loss_sentences

    held = {"base": {"val_loss": 3.41, "perplexity": 30.4}, "tuned": {"val_loss": 3.37, "perplexity": 29.1}}
    zero = {f"{k}_{n}": 0 for k in ("structure", "user_story", "dataset_format") for n in ("pass", "total")}
    base = {**zero, "structure_pass": 3, "structure_total": 8, "dataset_format_pass": 1, "dataset_format_total": 4}
    tuned = {**base, "structure_pass": 5, "dataset_format_pass": 4}  # measured on a real 135M model
    assert format_gained(base, tuned)
    said = " ".join(loss_sentences(held, format_gained(base, tuned)))
    assert "barely changed" not in said
    assert "the format was learned" in said
    assert not format_gained(base, {**base, "structure_pass": 4})  # one prompt more is noise
    assert "barely changed" in " ".join(loss_sentences(held, False))


def test_a_category_with_no_format_judge_or_reference_is_never_called_worse(tmp_path):
    # the tuned model misses the terms on both domain-knowledge prompts: with no judge and no reference answers
    # that is not evidence the model got worse at domain knowledge
    r = build_report(tmp_path, model="m", task="causal", events=[], heldout={}, prompts=list(BUILTIN),
                     generate=lambda ps, v: scripted(bad_categories=("domain_knowledge",))(ps, "tuned")
                     if v == "tuned" else [Generation(GOOD["domain_knowledge"], True, 9) for _ in ps])
    assert "domain knowledge" not in r["verdict"]
    assert "did not get worse in any category" in r["verdict"]


class Judge:
    """A scripted judge (a double): 2 on every criterion for answers in `low`, 4 for the rest, with real reasons."""

    def __init__(self, low: tuple[str, ...]) -> None:
        self.low = low

    def structured(self, prompt, schema, *, system=None):
        answer = prompt.split("<<<\n")[1]
        score = 2 if any(x in answer for x in self.low) else 4
        return schema.model_validate({c: {"score": score, "justification": f"The answer's {c} is as scored."}
                                      for c in CRITERIA})


def test_the_judge_marks_a_category_worse_only_when_it_falls_a_full_point_on_both_sides(tmp_path):
    # tuned answers domain knowledge vaguely ("Sure! ..."), base answers it well; the judge scores that 2 vs 4
    def generate(ps, v):
        return scripted(bad_categories=("domain_knowledge",))(ps, "tuned") if v == "tuned" else [
            Generation(GOOD["domain_knowledge"], True, 9) for _ in ps]

    r = build_report(tmp_path, model="m", task="causal", events=[], heldout={}, prompts=list(BUILTIN),
                     generate=generate, judge=Judge(low=("Sure!",)), judge_model="j")
    assert "It got worse at domain knowledge." in r["verdict"]
    assert r["summary"]["by_category"]["domain_knowledge"]["tuned"]["judged"] == 2


def test_format_lost_on_one_prompt_is_noise_on_both_it_is_worse(tmp_path):
    story = BUILTIN[0]
    lost_one = {"base": [Generation(STORY.format(x="a"), True, 9)] * 2,
                "tuned": [Generation(STORY.format(x="a"), True, 9), Generation("A story.", True, 3)]}
    r = build_report(tmp_path, model="m", task="causal", events=[], heldout={}, prompts=[story, BUILTIN[1]],
                     generate=lambda ps, v: lost_one[v])
    assert "got worse" not in r["verdict"]
    lost_both = {"base": lost_one["base"], "tuned": [Generation("A story.", True, 3)] * 2}
    r = build_report(tmp_path, model="m", task="causal", events=[], heldout={}, prompts=[story, BUILTIN[1]],
                     generate=lambda ps, v: lost_both[v])
    assert "It got worse at format consistency." in r["verdict"]


def test_judge_scores_each_answer_and_agreement_with_the_user(tmp_path, ollama):
    ollama.models.append("judge:latest")

    def reply(body):
        answer = body["messages"][-1]["content"].split("<<<")[1]
        good = "Acceptance criteria" in answer or "KPI" in answer
        return json.dumps({c: {"score": 5 if good else 2, "justification": "It has what the request asks for."}
                           for c in CRITERIA})

    ollama.responder = reply
    record_user_scores(tmp_path, "story-password-reset", "tuned", {"tone": 4, "format": 5})
    prompts = list(BUILTIN[:3])
    r = build_report(tmp_path, model="m", task="causal", events=[], heldout={}, prompts=prompts,
                     generate=scripted(), judge=OllamaStructured("judge"), judge_model="judge")
    assert len(ollama.requests_to("/api/chat")) == 2 * len(prompts)
    s = r["summary"]
    assert s["tuned"]["judge_mean"] == 5.0
    assert s["base"]["judge_mean"] == 2.0
    assert "Judge: scores average 2.0 → 5.0" in r["verdict"]
    assert r["prompts"][0]["tuned"]["judge"]["tone"]["justification"] == "It has what the request asks for."
    assert r["judge_left_out"] == {"n": 0, "of": 6, "reasons": {}}
    ag = r["agreement"]
    assert ag["n"] == 2
    assert ag["mean_abs_diff"] == pytest.approx(0.5)
    # the user scores one more answer in the UI later: the saved report is updated without generating again
    write_report(tmp_path, r, [])
    record_user_scores(tmp_path, "okrs-vs-kpis", "base", {"accuracy": 2})
    assert refresh_agreement(tmp_path)["n"] == 3
    saved = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert saved["agreement"]["n"] == 3
    assert "3 scores compared" in (tmp_path / "eval" / "report.md").read_text()


def test_report_files_markdown_png_and_plotly(tmp_path):
    import plotly.io

    evs = events()
    r = build_report(tmp_path, model="m", task="causal", events=evs, heldout=HELD, prompts=list(BUILTIN),
                     generate=scripted())
    out = write_report(tmp_path, r, evs)
    saved = json.loads((out / "report.json").read_text())
    assert saved["verdict"] == r["verdict"]
    assert len(saved["prompts"]) == len(BUILTIN)
    md = (out / "report.md").read_text()
    assert "## Verdict" in md
    assert "story-password-reset" in md
    assert "![loss_png](loss.png)" in md
    for name in ("loss", "scores"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        fig = plotly.io.from_json((out / f"{name}.plotly.json").read_text())
        assert len(fig.data) == 2
    loss = json.loads((out / "loss.plotly.json").read_text())
    assert [t["name"] for t in loss["data"]] == ["training loss", "validation loss"]
    assert len(loss["data"][0]["x"]) == 40
    assert len(loss["data"][1]["x"]) == 4


def test_classification_verdict_and_confusion(tmp_path):
    labels = ["bug", "feature", "question"]
    gold = ["bug", "bug", "feature", "question", "feature"]
    held = {"base": classification_metrics(gold, ["bug"] * 5, labels),
            "tuned": classification_metrics(gold, ["bug", "feature", "feature", "question", "feature"], labels)}
    r = build_report(tmp_path, model="minilm", task="classification", events=[], heldout=held, prompts=[],
                     generate=None)
    v = r["verdict"]
    assert "labels 4 of 5 held-out texts correctly (80 %; base: 2 of 5, 40 %)" in v
    assert "mistakes 'bug' for 'feature' (1 time)" in v
    assert "only 5 held-out texts, one more right or wrong moves accuracy by 20 points" in v
    out = write_report(tmp_path, r, [])
    md = (out / "report.md").read_text()
    assert "Confusion matrix" in md
    assert "| bug | 1 | 1 | 0 |" in md
    assert json.loads((out / "scores.plotly.json").read_text())["data"][1]["y"][0] == pytest.approx(0.8)


def _spam_heldout(pred_spam: int) -> dict:
    """SMS spam held out: 862 ham, 138 spam; the model calls `pred_spam` of the spam texts spam."""
    labels = ["ham", "spam"]
    gold = ["ham"] * 862 + ["spam"] * 138
    pred = ["ham"] * 862 + ["spam"] * pred_spam + ["ham"] * (138 - pred_spam)
    return {"base": classification_metrics(gold, ["ham"] * 500 + ["spam"] * 500, labels),
            "tuned": classification_metrics(gold, pred, labels),
            "majority": majority_baseline(majority_label(["ham"] * 4000 + ["spam"] * 600), gold)}


def test_a_classifier_that_always_answers_the_commonest_label_is_called_out(tmp_path):
    r = build_report(tmp_path, model="minilm", task="classification", events=[], heldout=_spam_heldout(0),
                     prompts=[], generate=None)
    assert ("Always answering 'ham' would score 0.862; this model scores 0.862 — it has not learned to find "
            "'spam'.") in r["verdict"]
    assert "fewer than half" not in r["verdict"]
    md = render_markdown(r)
    assert "| always 'ham' | 0.862 |" in md


def test_a_classifier_that_beats_the_baseline_is_told_so_with_the_baseline_named(tmp_path):
    r = build_report(tmp_path, model="minilm", task="classification", events=[], heldout=_spam_heldout(120),
                     prompts=[], generate=None)
    assert "Always answering 'ham' would score 0.862; this model scores 0.982: it beats that guess." in r["verdict"]
    assert "has not learned" not in r["verdict"]


def test_mtw_eval_prints_the_baseline_row(tmp_path):
    from rich.console import Console

    from tools.evaluate.cli import _print

    r = build_report(tmp_path, model="minilm", task="classification", events=[], heldout=_spam_heldout(0),
                     prompts=[], generate=None)
    console = Console(record=True, width=140)
    _print(r, console)
    text = console.export_text()
    assert "always 'ham'" in text
    assert "it has not learned to find 'spam'" in " ".join(text.split())


def test_compare_two_runs():
    a = {"run_dir": "runs/v1", "data": "d.jsonl", "heldout": {"tuned": {"val_loss": 3.0}},
         "summary": {"tuned": {"all_checks_pass": 4, "prompts": 8}}}
    b = {"run_dir": "runs/v2", "data": "d.jsonl", "heldout": {"tuned": {"val_loss": 2.5}},
         "summary": {"tuned": {"all_checks_pass": 6, "prompts": 8}}}
    c = compare_reports(a, b)
    assert [(m["metric"], m["better"]) for m in c["metrics"]] == [("validation loss", "b"),
                                                                  ("share of prompts passing every check", "b")]
    assert c["metrics"][1]["a"] == 0.5
    assert c["verdict"].startswith("v2 is better on 2 of 2 measures")
    assert "different data" not in c["verdict"]


def test_compare_uses_shares_when_suites_differ_and_flags_different_data():
    a = {"run_dir": "v1", "data": "a.jsonl", "summary": {"tuned": {"all_checks_pass": 5, "prompts": 10}}}
    b = {"run_dir": "v2", "data": "b.jsonl", "summary": {"tuned": {"all_checks_pass": 3, "prompts": 4}}}
    c = compare_reports(a, b)
    assert c["metrics"][0]["better"] == "b"
    assert "trained on different data (a.jsonl vs b.jsonl)" in c["verdict"]


def test_how_the_answers_were_made_is_not_a_score_of_the_model(tmp_path):
    from tools.registry import flatten_scores, tuned_scores

    r = build_report(tmp_path, model="m", task="causal", events=[], heldout=HELD, prompts=list(BUILTIN),
                     generate=scripted(), judge=Judge(low=()), judge_model="j",
                     generation={"engine": "pytorch", "max_new_tokens": 384, "seconds": 61.0})
    scores = tuned_scores(flatten_scores(r))
    assert scores["summary.judge_mean"] == 4.0
    assert not [k for k in scores if k.startswith(("generation", "judge_left_out"))]
    assert "Answers from PyTorch on this machine, each up to 384 new tokens, in 61 s." in render_markdown(r)
