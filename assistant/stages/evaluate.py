"""Evaluate: base vs tuned with a plain verdict and charts, the user's own scores, and what to do next."""

from __future__ import annotations

import asyncio
import json
import shlex
from pathlib import Path
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Command

from assistant.context import WizardContext
from assistant.conversation import after_training, ask, go
from assistant.nodes import Node, routes
from assistant.state import WizardState, deploy_of, evaluate_of, playground_of, train_of
from assistant.ui_events import figure, inert, progress_event, say, stage, table
from tools.errors import MTWError
from tools.evaluate.report import confusion_figure
from tools.evaluate.report_model import load_report

SCORED_ANSWERS = 3
SCORED_CRITERIA = ("format", "tone")
"""What a person judges best at a glance; the judge model scores all five rubric criteria."""


@routes(asks=(Node.on_next,))
def choose_next(state: WizardState) -> Command[Any]:
    """The hub after a run: compare, export, check, score, start again — the conversation never just ends."""
    exported = deploy_of(state).get("exported_name")
    where, finished = after_training(state)
    stage(where, finished=finished)
    choices: dict[str, str] = {}
    if not evaluate_of(state).get("evaluated"):
        choices["eval"] = "Compare it with the base model"
    if exported and not evaluate_of(state).get("checked_export"):
        choices["check"] = f"Check {exported} as Ollama serves it"
    if not exported:
        choices["export"] = "Put it into Ollama"
    choices["try"] = "Try it"
    if evaluate_of(state).get("evaluated"):
        choices["score"] = "Score a few answers myself"
        choices["judge"] = "Pick the better answers"
        choices["improve"] = "Improve it (next round)"
    choices["ratings"] = "Improve with my ratings"
    choices["models"] = "My models"
    choices["new"] = "Start a new model"
    text = "What next?"
    if exported:
        text = f"**{exported}** is in your Ollama — try it with `ollama run {shlex.quote(str(exported))}`. What next?"
    return ask(state, text, then=Node.on_next, stage=where, finished=finished, choices=choices,
               effects=("export",))


NEXT: dict[str, Node] = {
    "eval": Node.evaluate_model, "check": Node.check_export, "export": Node.export_model, "score": Node.score_answer,
    "models": Node.list_models, "new": Node.confirm_start_over, "try": Node.try_model,
    "improve": Node.plan_improvement, "judge": Node.judge_answers, "ratings": Node.improve_with_ratings,
}
"""Where each choice of "what next" leads."""


@routes(*NEXT.values())
def on_next(state: WizardState) -> Command[Any]:
    """Follow the choice."""
    picked = str(state["intent"].get("value"))
    return go(NEXT[picked], {"score_index": 0, "score_criterion": 0, "try_back": Node.choose_next.value,
                             "judge_index": 0})


@routes(Node.compare_round_versions, Node.choose_next)
async def evaluate_model(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Base vs tuned on held-out data and test prompts; the plain verdict and the charts."""
    return await _evaluate(state, runtime, served=None)


@routes(Node.compare_round_versions, Node.choose_next)
async def check_export(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """The same comparison with the tuned answers coming from the model Ollama now serves."""
    return await _evaluate(state, runtime, served=deploy_of(state).get("exported_name") or None)


async def _evaluate(state: WizardState, runtime: Runtime[WizardContext], served: str | None) -> Command[Any]:
    from tools.evaluate.run import evaluate_run

    stage("evaluate")
    run_dir = Path(train_of(state)["run_dir"])
    judge = runtime.context.llm.model if state.get("llm_ok") else None
    tuned = f"**{served}** as your Ollama serves it" if served else "the tuned model"
    say(f"Comparing {tuned} with its base on your held-out examples and the test prompts"
        + (f", with **{judge}** as the judge" if judge else "") + ". Progress shows below.")
    writer, loop = get_stream_writer(), asyncio.get_running_loop()

    def progress(what: str, done: int, total: int) -> None:
        # called from the evaluation's thread: the event loop owns the stream
        status = f"{what[0].upper()}{what[1:]}" + (f": {done} of {total}" if total else "")
        loop.call_soon_threadsafe(writer, progress_event("evaluate", "Comparing with the base model", status, done,
                                                         total))

    try:
        report = await asyncio.to_thread(evaluate_run, run_dir, judge_model=judge, ollama_model=served,
                                         progress=progress)
    except MTWError as exc:
        say(f"The comparison did not finish: {in_words(exc)}")
        # not marked as evaluated: the Tasks panel does not tick Evaluate, and the comparison stays on offer
        return go(Node.choose_next)
    if served:
        from tools.evaluate.report import report_dir

        say(f"**Verdict for {served}.** {report['verdict']}\n\nThe full report is "
            f"`{report_dir(run_dir, served) / 'report.md'}`.")
        return go(Node.choose_next, {"checked_export": True, "evaluated": True})
    say(f"**Verdict.** {report['verdict']}")
    side_by_side(report)
    for name, file in report.get("charts", {}).items():
        if name.endswith("_plotly"):
            figure(name.removesuffix("_plotly"), (run_dir / "eval" / file).read_text(encoding="utf-8"))
    left = report.get("judge_left_out") or {}
    if left.get("n"):
        say(f"The judge's scores were left out for {left['n']} of {left['of']} answers, so the comparison above "
            "rests on the format checks and on how close the answers come to yours. Your own eye is the best "
            "judge: choose **Score a few answers myself** below.")
    say(f"The full report with every answer is `{run_dir / 'eval' / 'report.md'}`.")
    # after a preference round: also against the version it started from
    return go(Node.compare_round_versions if playground_of(state).get("pref_from") else Node.choose_next,
              {"evaluated": True})


def in_words(exc: MTWError) -> str:
    """An engine error for the chat: its message, and its fix unless that fix is a command to type in a terminal."""
    command = "`mtw " in exc.fix or " --" in exc.fix
    return exc.message if command or not exc.fix else f"{exc.message} {exc.fix}"


def side_by_side(report: dict[str, Any]) -> None:
    """Base and tuned in the page: per test category with judge scores and a winner; classifiers against the
    majority-class baseline with the confusion matrix."""
    for title, columns, rows in comparison_tables(report):
        table(title, columns, rows)
    held = (report.get("heldout") or {}).get("tuned") or {}
    if held.get("confusion"):
        say(baseline_sentence(report))
        figure("confusion matrix", json.dumps(confusion_figure(held["labels"], held["confusion"])))


def _answer(item: dict[str, Any], variant: str) -> str:
    return str((item.get(variant) or {}).get("answer", ""))[:400].replace("\n", " ") or "(empty)"


def winner(item: dict[str, Any]) -> str:
    """Which answer is better: by the judge's mean score, else by the format checks; a tie when equal."""
    base, tuned = item.get("base") or {}, item.get("tuned") or {}
    if base.get("judge_mean") is not None and tuned.get("judge_mean") is not None:
        b, t = float(base["judge_mean"]), float(tuned["judge_mean"])
    else:
        b, t = float(bool(base.get("format_ok"))), float(bool(tuned.get("format_ok")))
    return "🏆 tuned" if t > b else "🏆 base" if b > t else "tie"


def _judged(item: dict[str, Any]) -> str:
    """'accuracy 3→4 · format 2→5 …': the judge's score per criterion, base → tuned."""
    base, tuned = (item.get("base") or {}).get("judge") or {}, (item.get("tuned") or {}).get("judge") or {}
    if not (base and tuned) and any((item.get(v) or {}).get("judge_left_out") for v in ("base", "tuned")):
        return "left out"
    return " · ".join(f"{c} {base[c]['score'] if c in base else '—'}→{tuned[c]['score']}" for c in tuned) or "—"


def comparison_tables(report: dict[str, Any], per_category: int = 3) -> list[tuple[str, list[str], list[list[str]]]]:
    """One table per test category: prompt, both answers, the judge per criterion (base → tuned), the winner."""
    out = []
    by_cat: dict[str, list[dict[str, Any]]] = {}
    for item in report.get("prompts", []):
        by_cat.setdefault(str(item.get("category", "other")), []).append(item)
    for cat, items in by_cat.items():
        rows = [[str(i.get("prompt", ""))[:200], _answer(i, "base"), _answer(i, "tuned"), _judged(i), winner(i)]
                for i in items[:per_category]]
        wins = sum(winner(i) == "🏆 tuned" for i in items)
        out.append((f"{cat.replace('_', ' ').capitalize()}: tuned better on {wins} of {len(items)}",
                    ["Prompt", "Base model", "Tuned model", "Judge (base→tuned)", "Winner"], rows))
    return out


def baseline_sentence(report: dict[str, Any]) -> str:
    """A classifier's accuracy against always answering the most common label (the majority-class baseline)."""
    held = report["heldout"]
    tuned, base = held["tuned"], held.get("base") or {}
    counts = [sum(row) for row in tuned["confusion"]]
    n = max(1, sum(counts))
    top = max(range(len(counts)), key=lambda i: counts[i])
    line = (f"**Accuracy {tuned['accuracy']:.0%}** on {n} held-out texts; always answering the most common label "
            f"('{tuned['labels'][top]}') would get {counts[top] / n:.0%}")
    if "accuracy" in base:
        line += f"; the base model gets {base['accuracy']:.0%}"
    verdict = "better than" if tuned["accuracy"] > counts[top] / n else "no better than"
    return f"{line}. The tuned classifier is **{verdict}** that baseline."


@routes(Node.report_agreement, asks=(Node.on_score,))
def score_answer(state: WizardState) -> Command[Any]:
    """Ask the user to score the tuned model's answers (format, then tone) so the judge can be checked."""
    run_dir = Path(train_of(state)["run_dir"])
    report = load_report(run_dir)
    prompts = report.prompts[:SCORED_ANSWERS] if report else []
    i, c = evaluate_of(state).get("score_index", 0), evaluate_of(state).get("score_criterion", 0)
    if i >= len(prompts):
        return go(Node.report_agreement)
    item, criterion = prompts[i], SCORED_CRITERIA[c]
    answer = item.tuned.answer[:1200]
    return ask(state, f"Answer {i + 1} of {len(prompts)} — **{inert(item.prompt)}**\n\n"
                      f"> {inert(answer) or '(empty answer)'}"
                      f"\n\nHow good is its **{criterion}**, 1 (poor) to 5 (exactly what you would write)?",
               then=Node.on_score, stage="evaluate", choices={str(n): str(n) for n in range(1, 6)},
               update={"score_prompts": len(prompts)})


@routes(Node.score_answer, Node.report_agreement)
def on_score(state: WizardState) -> Command[Any]:
    """Save the score with the report, then the next criterion or answer."""
    from tools.evaluate.agreement import record_user_scores

    run_dir = Path(train_of(state)["run_dir"])
    report = load_report(run_dir)
    i, c = evaluate_of(state).get("score_index", 0), evaluate_of(state).get("score_criterion", 0)
    item = report.prompts[i] if report else None
    if item is None:  # the report went away between the question and the answer: nothing to score
        return go(Node.report_agreement)
    record_user_scores(run_dir, item.id, "tuned", {SCORED_CRITERIA[c]: int(state["intent"]["value"])})
    c += 1
    if c == len(SCORED_CRITERIA):
        i, c = i + 1, 0
    return go(Node.score_answer, {"score_index": i, "score_criterion": c})


@routes(Node.choose_next)
async def report_agreement(state: WizardState) -> Command[Any]:
    """Say how the judge's scores compare with the user's."""
    from tools.evaluate.run import refresh_agreement

    agreed = await asyncio.to_thread(refresh_agreement, train_of(state)["run_dir"])
    if agreed:
        say(f"Thanks — saved. The judge model agrees with you within one point on {agreed['within_one']:.0%} of "
            f"{agreed['n']} scores (mean difference {agreed['mean_abs_diff']:.1f}).")
    else:
        say("Thanks — your scores are saved with the report. The judge gave no scores for these answers, so "
            "yours are the rubric scores of this model.")
    return go(Node.choose_next, {"score_index": 0, "score_criterion": 0})


@routes(Node.listen, Node.choose_next, asks=(Node.on_models,))
async def list_models(state: WizardState) -> Command[Any]:
    """Every registered model: version, base, scores, the promoted one; then compare, promote or delete."""
    from tools.registry import list_models as registered

    models = await asyncio.to_thread(registered)
    if not models:
        say("No models are registered yet: they appear here once a run is put into Ollama.")
        return go(Node.listen if state.get("question") else Node.choose_next)
    rows = [[("⭐ " if m.promoted else "") + m.name, str(m.version), m.base_model, _scores(m.eval_scores),
             "yes" if m.verified else "no", m.created[:10]] for m in models]
    table("My models", ["Name", "Version", "Base", "Scores", "Verified", "Created"], rows)
    choices = {"promote": "Promote one", "delete": "Delete one", "back": "Back"}
    if len(models) > 1:
        choices = {"compare": "Compare two", **choices}
    return ask(state, "⭐ marks the promoted version of each model. What would you like to do?", then=Node.on_models,
               stage="deploy", choices=choices, update={"models_action": "", "models_picked": []})


@routes(Node.pick_model, Node.choose_next, Node.choose_data)
def on_models(state: WizardState) -> Command[Any]:
    """Pick the model(s) the action is for, or go back."""
    picked = str(state["intent"].get("value"))
    if picked == "back":
        return go(Node.choose_next if train_of(state).get("train_outcome") else Node.choose_data)
    return go(Node.pick_model, {"models_action": picked, "models_picked": []})


@routes(asks=(Node.on_pick_model,))
async def pick_model(state: WizardState) -> Command[Any]:
    """Ask which registered model (by its name as a button)."""
    from tools.registry import list_models as registered

    action, done = str(evaluate_of(state).get("models_action")), list(evaluate_of(state).get("models_picked") or [])
    names = [m.name for m in await asyncio.to_thread(registered) if m.name not in done]
    text = {"compare": "Compare which model?" if not done else f"Compare {done[0]} with which?",
            "promote": "Promote which model (the one your team should use)?", "delete": "Delete which model?"}[action]
    return ask(state, text, then=Node.on_pick_model, stage="deploy", choices={n: n for n in names})


@routes(Node.show_comparison, Node.list_models, Node.pick_model, asks=(Node.on_delete,))
async def on_pick_model(state: WizardState) -> Command[Any]:
    """Compare (after the second pick), promote, or ask to confirm the deletion."""
    from tools import registry

    action = str(evaluate_of(state).get("models_action"))
    picked = [*(evaluate_of(state).get("models_picked") or []), str(state["intent"].get("value"))]
    if action == "compare":
        if len(picked) < 2:
            return go(Node.pick_model, {"models_picked": picked})
        return go(Node.show_comparison, {"comparing": picked})
    if action == "promote":
        try:
            record = await asyncio.to_thread(registry.promote, picked[0])
        except MTWError as exc:
            say(f"{exc.message} {exc.fix}")
            return go(Node.list_models)
        say(f"⭐ **{record.name}** is now the promoted version of {record.stem}.")
        return go(Node.list_models)
    return ask(state, f"Delete **{picked[0]}**? Removing it from the list keeps it in Ollama; you can remove it "
                      "from Ollama too.", then=Node.on_delete, stage="deploy", effects=("yes", "ollama"),
               choices={"yes": "Delete from the list", "ollama": "Delete from the list and from Ollama",
                        "no": "Keep it"}, update={"models_picked": picked})


@routes(Node.list_models, Node.choose_next, Node.choose_data)
async def on_delete(state: WizardState) -> Command[Any]:
    """Delete after the confirmation (from Ollama too when asked)."""
    from tools import registry
    from tools.export.create import delete_model

    picked, name = str(state["intent"].get("value")), str((evaluate_of(state).get("models_picked") or [""])[0])
    if picked in ("yes", "ollama"):
        try:
            await asyncio.to_thread(registry.delete, name)
            gone = picked == "ollama" and await asyncio.to_thread(delete_model, name)
        except MTWError as exc:
            say(f"{exc.message} {exc.fix}")
            return go(Node.list_models)
        say(f"Deleted **{name}** from your models" + (" and from Ollama." if gone else "."))
        # the menu after the run says what is in Ollama: a model taken out of it can be put back in
        update = ({"exported_name": "", "checked_export": False}
                  if gone and name == deploy_of(state).get("exported_name") else {})
        if not await asyncio.to_thread(registry.list_models):
            return go(Node.choose_next if train_of(state).get("train_outcome") else Node.choose_data, update)
        return go(Node.list_models, update)
    return go(Node.list_models)


HEADLINE = ("summary.judge_mean", "heldout.accuracy", "heldout.f1", "heldout.token_accuracy", "summary.rouge_l")
"""The numbers that decide which of two versions is better, in order of trust."""


@routes(Node.choose_next, asks=(Node.on_promote_choice,))
async def show_comparison(state: WizardState) -> Command[Any]:
    """Two versions side by side (their eval reports), the better one named, and the offer to promote it."""
    from tools import registry

    a, b = (str(n) for n in evaluate_of(state).get("comparing") or ["", ""])
    try:
        cmp = await asyncio.to_thread(registry.compare, a, b)
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return go(Node.choose_next)
    # the deciding numbers first: the table is cut short, and the one the verdict names must be in it
    scored = sorted((r for r in cmp.rows if r[1] is not None or r[2] is not None),
                    key=lambda r: HEADLINE.index(r[0]) if r[0] in HEADLINE else len(HEADLINE))
    rows = [[m, "—" if x is None else f"{x:.3g}", "—" if y is None else f"{y:.3g}"] for m, x, y in scored][:14]
    table(f"{a} and {b}", ["Metric", a, b], rows or [["(no scores yet)", "—", "—"]])
    shared = next(((m, x, y) for key in HEADLINE for m, x, y in cmp.rows if m == key and x is not None
                   and y is not None), None)
    better = b
    if shared:
        better = a if shared[1] > shared[2] else b
        say(f"**{better}** scores higher on {shared[0]} ({max(shared[1], shared[2]):.3g} vs "
            f"{min(shared[1], shared[2]):.3g}).")
    else:
        say("These two have no score in common yet: compare them with the base model first (evaluation).")
    other = a if better == b else b
    where, finished = after_training(state)
    return ask(state, f"Promote **{better}** as the version to use?", then=Node.on_promote_choice,
               stage=where, finished=finished,
               choices={"yes": f"Promote {better}", "other": f"Promote {other}", "no": "Not now"},
               update={"comparing": [better, other]})


@routes(Node.choose_next)
async def on_promote_choice(state: WizardState) -> Command[Any]:
    """Promote the version chosen after a comparison."""
    from tools import registry

    picked = str(state["intent"].get("value"))
    if picked != "no":
        name = str((evaluate_of(state).get("comparing") or ["", ""])[0 if picked == "yes" else 1])
        try:
            record = await asyncio.to_thread(registry.promote, name)
            say(f"⭐ **{record.name}** is now the promoted version of {record.stem}.")
        except MTWError as exc:
            say(f"{exc.message} {exc.fix}")
    return go(Node.choose_next)


def _scores(scores: dict[str, float], shown: int = 3) -> str:
    """A few of a model's scores, short."""
    return ", ".join(f"{k.split('.')[-1]} {v:.2f}" for k, v in list(scores.items())[:shown]) or "—"
