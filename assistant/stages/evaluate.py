"""Evaluate: base vs tuned with a plain verdict and charts, the user's own scores, and what to do next."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Command

from assistant.context import WizardContext
from assistant.conversation import ask, go
from assistant.state import WizardState
from assistant.ui_events import figure, say, stage, table
from tools.errors import MTWError

SCORED_ANSWERS = 3
SCORED_CRITERIA = ("format", "tone")
"""What a person judges best at a glance; the judge model scores all five rubric criteria."""


def choose_next(state: WizardState) -> Command[Any]:
    """The hub after a run: compare, export, check, score, start again — the conversation never just ends."""
    stage("evaluate")
    choices: dict[str, str] = {}
    exported = state.get("exported_name")
    if not state.get("evaluated"):
        choices["eval"] = "Compare it with the base model"
    if exported and not state.get("checked_export"):
        choices["check"] = f"Check {exported} as Ollama serves it"
    if not exported:
        choices["export"] = "Put it into Ollama"
    if state.get("evaluated"):
        choices["score"] = "Score a few answers myself"
    choices["models"] = "My models"
    choices["new"] = "Start a new model"
    text = "What next?"
    if exported:
        text = f"**{exported}** is in your Ollama — try it with `ollama run {exported}`. What next?"
    return ask(state, text, then="on_next", stage="evaluate", choices=choices, effects=("export",))


def on_next(state: WizardState) -> Command[Any]:
    """Follow the choice."""
    picked = str(state["intent"].get("value"))
    return go({"eval": "evaluate_model", "check": "check_export", "export": "export_model", "score": "score_answer",
               "models": "list_models", "new": "confirm_start_over"}[picked], {"score_index": 0,
                                                                               "score_criterion": 0})


async def evaluate_model(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Base vs tuned on held-out data and test prompts; the plain verdict and the charts."""
    return await _evaluate(state, runtime, served=None)


async def check_export(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """The same comparison with the tuned answers coming from the model Ollama now serves."""
    return await _evaluate(state, runtime, served=state.get("exported_name") or None)


async def _evaluate(state: WizardState, runtime: Runtime[WizardContext], served: str | None) -> Command[Any]:
    from tools.evaluate.run import evaluate_run

    stage("evaluate")
    run_dir = Path(state["run_dir"])
    judge = runtime.context.llm.model if state.get("llm_ok") else None
    tuned = f"**{served}** as your Ollama serves it" if served else "the tuned model"
    say(f"Comparing {tuned} with its base on your held-out examples and the test prompts"
        + (f", with **{judge}** as the judge" if judge else "") + " — this takes a minute or two.")
    try:
        report = await asyncio.to_thread(evaluate_run, run_dir, judge_model=judge, ollama_model=served)
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return go("choose_next")
    if served:
        from tools.evaluate.report import report_dir

        say(f"**Verdict for {served}.** {report['verdict']}\n\nThe full report is "
            f"`{report_dir(run_dir, served) / 'report.md'}`.")
        return go("choose_next", {"checked_export": True, "evaluated": True})
    say(f"**Verdict.** {report['verdict']}")
    side_by_side(report)
    for name, file in report.get("charts", {}).items():
        if name.endswith("_plotly"):
            figure(name.removesuffix("_plotly"), (run_dir / "eval" / file).read_text(encoding="utf-8"))
    say(f"The full report with every answer is `{run_dir / 'eval' / 'report.md'}`.")
    return go("choose_next", {"evaluated": True})


def side_by_side(report: dict[str, Any], limit: int = 4) -> None:
    """Base and tuned answers to the same prompts, in the page."""
    rows = []
    for item in report.get("prompts", [])[:limit]:
        base = str((item.get("base") or {}).get("answer", ""))[:400]
        tuned = str((item.get("tuned") or {}).get("answer", ""))[:400]
        rows.append([str(item.get("prompt", ""))[:200], base.replace("\n", " "), tuned.replace("\n", " ")])
    if rows:
        table("Base and tuned, side by side", ["Prompt", "Base model", "Tuned model"], rows)


def score_answer(state: WizardState) -> Command[Any]:
    """Ask the user to score the tuned model's answers (format, then tone) so the judge can be checked."""
    run_dir = Path(state["run_dir"])
    report = json.loads((run_dir / "eval" / "report.json").read_text(encoding="utf-8"))
    prompts = report.get("prompts", [])[:SCORED_ANSWERS]
    i, c = state.get("score_index", 0), state.get("score_criterion", 0)
    if i >= len(prompts):
        return go("report_agreement")
    item, criterion = prompts[i], SCORED_CRITERIA[c]
    answer = str((item.get("tuned") or {}).get("answer", ""))[:1200]
    return ask(state, f"Answer {i + 1} of {len(prompts)} — **{item['prompt']}**\n\n> {answer or '(empty answer)'}"
                      f"\n\nHow good is its **{criterion}**, 1 (poor) to 5 (exactly what you would write)?",
               then="on_score", stage="evaluate", choices={str(n): str(n) for n in range(1, 6)},
               update={"score_prompts": len(prompts)})


def on_score(state: WizardState) -> Command[Any]:
    """Save the score with the report, then the next criterion or answer."""
    from tools.evaluate.agreement import record_user_scores

    run_dir = Path(state["run_dir"])
    report = json.loads((run_dir / "eval" / "report.json").read_text(encoding="utf-8"))
    i, c = state.get("score_index", 0), state.get("score_criterion", 0)
    item = report.get("prompts", [])[i]
    record_user_scores(run_dir, item["id"], "tuned", {SCORED_CRITERIA[c]: int(state["intent"]["value"])})
    c += 1
    if c == len(SCORED_CRITERIA):
        i, c = i + 1, 0
    return go("score_answer", {"score_index": i, "score_criterion": c})


async def report_agreement(state: WizardState) -> Command[Any]:
    """Say how the judge's scores compare with the user's."""
    from tools.evaluate.run import refresh_agreement

    agreed = await asyncio.to_thread(refresh_agreement, state["run_dir"])
    if agreed:
        say(f"Thanks — saved. The judge model agrees with you within one point on {agreed['within_one']:.0%} of "
            f"{agreed['n']} scores (mean difference {agreed['mean_abs_diff']:.1f}).")
    else:
        say("Thanks — your scores are saved with the report. Run the comparison with a judge model "
            f"(`mtw eval {state['run_dir']} --judge MODEL`) to see how well it agrees with you.")
    return go("choose_next", {"score_index": 0, "score_criterion": 0})


async def list_models(state: WizardState) -> Command[Any]:
    """Every registered model: version, base, scores, the promoted one."""
    from tools.registry import list_models as registered

    models = await asyncio.to_thread(registered)
    if not models:
        say("No models are registered yet: they appear here once a run is put into Ollama.")
    else:
        rows = [[("⭐ " if m.promoted else "") + m.name, m.base_model, _scores(m.eval_scores),
                 "yes" if m.verified else "no", m.created[:10]] for m in models]
        table("My models", ["Name", "Base", "Scores", "Verified", "Created"], rows)
    return go("listen" if state.get("question") else "choose_next")


def _scores(scores: dict[str, float], shown: int = 3) -> str:
    """A few of a model's scores, short."""
    return ", ".join(f"{k.split('.')[-1]} {v:.2f}" for k, v in list(scores.items())[:shown]) or "—"
