"""Teach by preference: judgements collected while trying the model and in the comparison ("which is better?",
👍 / 👎, the answer the user wanted), then "Improve with my ratings" trains a preference round on them."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Command

from assistant.context import WizardContext
from assistant.conversation import after_training, ask, go
from assistant.nodes import TRY_BACK, Node, routes
from assistant.state import WizardState, evaluate_of, playground_of, spec_of, train_of
from assistant.ui_events import say, stage, table
from tools.errors import MTWError
from tools.evaluate.report_model import PromptRow, load_report
from tools.project import project_dir, slugify

DONE = {"done", "done trying", "stop trying", "enough", "that's enough", "finished"}
"""What ends trying the model, typed at any of its questions."""
_FIRST = r"(?:first|1st|1|top|upper|left|former|earlier|a)"
_SECOND = r"(?:second|2nd|2|bottom|lower|right|latter|later|b|other)"
_WHO = r"(?:the\s+)?(?:{side})(?:\s+(?:one|answer|reply|version))?"
_VERDICT = r"(?:\s+(?:one|answer))?(?:\s+(?:is|was|looks|reads|seems))?(?:\s+(?:much|way|a lot|far))?" \
           r"(?:\s+(?:better|best|nicer|preferred|the winner|wins))?"
PICK_PATTERNS = [
    (re.compile(rf"^(?:i\s+(?:prefer|like|pick|choose|want)\s+)?{_WHO.format(side=side)}{_VERDICT}$"), pick)
    for side, pick in ((_FIRST, "first"), (_SECOND, "second"), ("base|original|untrained", "base"),
                       ("tuned|trained|new|fine-tuned", "tuned"))
] + [(re.compile(r"^(?:both(?:\s+are)?(?:\s+(?:fine|good|ok|the same|equal))?|same|equal|a tie|tie|neither"
                 r"(?:\s+(?:one|is better))?|no difference|can't tell|cannot tell)$"), "same")]
"""Typed verdicts on two answers: "the second one", "left is better", "I prefer the first", "both are fine"."""
FIRST_SAID = ("conflicting_judgement", "same_answers", "secret", "pii_email", "pii_phone", "duplicate")
"""Of the check's warnings on the judgements, these are said first (near-copies of one request are common)."""
ROUND_TRY_SETS = {"learning_rate": "5e-3", "val_share": "0.25"}
ROUND_TRY_STEPS = 12
"""A preference round on tiny-random from the chat: a bold rate and few steps, to show the workflow only."""
ROUND_SETS = {"val_share": "0.25"}
"""A chat round holds a quarter of the judgements out, so the evaluation can show them to the new version unseen."""


def pick_answer(text: str) -> str:
    """Which of two answers a typed reply picks: first, second, base, tuned or same; "" when it names none."""
    t = re.sub(r"[\s.!,]+", " ", text.strip().lower()).strip()
    t = re.sub(r"^(?:i think|i'd say|i would say|hmm|ok|okay|well)\s+", "", t)
    return next((pick for pattern, pick in PICK_PATTERNS if pattern.match(t)), "")


def _project(state: WizardState) -> str:
    return spec_of(state).name


def _judgements(state: WizardState) -> Any:
    from tools.dataset.collect import judgement_store

    return judgement_store(_project(state))


def writer_of(state: WizardState, which: str, source: str) -> str:
    """Who wrote an answer, as a judgement keeps it: the Ollama model, the run's adapter, or its base."""
    if source.startswith("ollama:"):
        return source
    run_dir = str(train_of(state).get("run_dir") or "")
    if which == "base":
        from tools.train.config import load_run_config

        return f"base:{load_run_config(run_dir).model}" if run_dir else "base"
    return f"run:{run_dir}"


def keep_rating(state: WizardState, last: dict[str, Any], rating: str) -> str:
    """A Try-it rating kept as a judgement too (a middling 3 is not one); returns its id in the store, or ""."""
    from tools.dataset.collect import from_rating

    row = from_rating(last["prompt"], last["answer"], rating,
                      by=writer_of(state, str(last.get("which", "tuned")), str(last.get("source", ""))))
    return _judgements(state).add(row) if row is not None else ""


def keep_pick(state: WizardState, first: dict[str, Any], second: dict[str, Any], pick: str) -> str:
    """"Which is better?" answered: the picked answer kept over the other; "" for a tie (nothing to learn)."""
    from tools.dataset.collect import pair

    if pick in ("base", "tuned"):
        pick = "first" if first.get("which") == pick else "second" if second.get("which") == pick else ""
    if pick not in ("first", "second"):
        return ""
    won, lost = (first, second) if pick == "first" else (second, first)
    row = pair(str(first["prompt"]), str(won["answer"]), str(lost["answer"]),
               chosen_by=writer_of(state, str(won.get("which", "tuned")), str(won.get("source", ""))),
               rejected_by=writer_of(state, str(lost.get("which", "tuned")), str(lost.get("source", ""))))
    return str(_judgements(state).add(row))


def counted(state: WizardState) -> str:
    """How many judgements the project holds, for saying after each one."""
    from tools.dataset.collect import tally

    n = tally(_judgements(state)).total
    return f"{n} judgement{'s' * (n != 1)} so far"


# ---------------------------------------------------------------- "write the answer you wanted"


@routes(asks=(Node.on_wanted,))
def ask_wanted(state: WizardState) -> Command[Any]:
    """After a 👎: the answer the user wanted, which teaches twice (an example, and a pair over the bad answer)."""
    where, finished = after_training(state)
    return ask(state, "Write the answer you wanted instead (it becomes an example, and a judgement over this one), "
                      "or skip.", then=Node.on_wanted, stage=where, finished=finished, free_text=True, verbatim=True,
               choices={"skip": "Skip"})


@routes(*TRY_BACK, Node.try_model)
def on_wanted(state: WizardState) -> Command[Any]:
    """Keep the written answer as an example and as the better half of a pair; then back to trying."""
    from assistant.stages.author import store_of
    from tools.dataset.collect import pair
    from tools.dataset.model import Example

    wanted = str(state["intent"].get("value") or "").strip()
    bad = dict(playground_of(state).get("wanted_for") or {})
    if wanted.lower().strip(" .!") in DONE:
        return go(Node(playground_of(state).get("try_back") or Node.choose_next),
                  {"wanted_for": {}, "try_last": {}, "try_back": ""})
    if wanted and wanted != "skip" and bad:
        store = _judgements(state)
        row = pair(bad["prompt"], wanted, bad["answer"], chosen_by="you",
                   rejected_by=writer_of(state, str(bad.get("which", "tuned")), str(bad.get("source", ""))))
        if bad.get("id"):
            store.edit(bad["id"], row)  # the pair says all the thumb said, and more
        else:
            store.add(row)
        store_of(state).add(Example.chat(("user", bad["prompt"]), ("assistant", wanted)))
        say(f"Kept your answer as an example for the next round, and as better than the model's ({counted(state)}).")
    return go(Node.try_model, {"wanted_for": {}})


# ---------------------------------------------------------------- "which is better?" in the comparison


def _prompts(state: WizardState) -> list[PromptRow]:
    report = load_report(train_of(state)["run_dir"])
    return report.answered() if report else []


@routes(Node.choose_next, asks=(Node.on_judge,))
def judge_answers(state: WizardState) -> Command[Any]:
    """One test prompt of the comparison at a time: the base's answer (left) and the tuned one's (right)."""
    prompts, i = _prompts(state), int(playground_of(state).get("judge_index") or 0)
    if i >= len(prompts):
        say(f"That was every answer of the comparison ({counted(state)}).")
        return go(Node.choose_next, {"judge_index": 0})
    item = prompts[i]
    left, right = item.base.answer[:1200], item.tuned.answer[:1200]
    where, finished = after_training(state)
    return ask(state, f"Prompt {i + 1} of {len(prompts)} — **{item.prompt}**\n\n**Left** (base model):\n> "
                      f"{left}\n\n**Right** (tuned model):\n> {right}\n\nWhich is better?", then=Node.on_judge,
               stage=where, finished=finished, free_text=True,
               choices={"left": "Left is better", "right": "Right is better", "same": "About the same",
                        "done": "Done judging"})


@routes(Node.judge_answers, Node.choose_next, Node.listen)
def on_judge(state: WizardState) -> Command[Any]:
    """Keep the pick (typed or clicked) and show the next prompt; done goes back to what next."""
    value = str(state["intent"].get("value") or "")
    if value in ("left", "right", "same", "done"):
        pick = {"left": "first", "right": "second"}.get(value, value)
    else:
        pick = pick_answer(value)
    if pick == "done":
        return go(Node.choose_next, {"judge_index": 0})
    if not pick:
        say("Say which answer is better — “left”, “the second one”, “the tuned one” — or “about the same”.")
        return go(Node.listen)
    i = int(playground_of(state).get("judge_index") or 0)
    item = _prompts(state)[i]
    first = {"prompt": item.prompt, "answer": item.base.answer, "which": "base", "source": "local"}
    second = {"prompt": item.prompt, "answer": item.tuned.answer, "which": "tuned", "source": "local"}
    if keep_pick(state, first, second, pick):
        say(f"Kept ({counted(state)}).")
    return go(Node.judge_answers, {"judge_index": i + 1})


# ---------------------------------------------------------------- "Improve with my ratings"


@routes(asks=(Node.on_ratings_round,))
async def improve_with_ratings(state: WizardState) -> Command[Any]:
    """Say what a preference round on the judgements would be, or how many more judgements it needs."""
    from tools.dataset.collect import tally

    where, finished = after_training(state)
    stage(where, finished=finished)
    counts = await asyncio.to_thread(lambda: tally(_judgements(state)))
    short = counts.shortfall()
    if short:
        choices = {"try": "Rate answers in Try it"}
        if evaluate_of(state).get("evaluated"):
            choices["judge"] = "Pick the better answers of the comparison"
        choices["back"] = "Back"
        return ask(state, f"{short} Shall we collect them?", then=Node.on_ratings_round, stage=where, finished=finished,
                   choices=choices)
    kind = ("pairs (which of two answers is better), so it uses DPO" if counts.method == "dpo" else
            "single ratings as well as pairs, so it uses KTO, which learns from both")
    say(f"**Preference round:** {counts.total} judgements on top of `{Path(train_of(state)['run_dir']).name}`. "
        f"Your judgements are {kind}; the new version starts from this one and learns which of its answers you prefer.")
    return ask(state, "Start it? It trains in the background like any run.", then=Node.on_ratings_round, stage=where,
               finished=finished, choices={"start": "Start the preference round", "back": "Not now"},
               effects=("start",))


@routes(Node.choose_next, Node.start_preference_round, Node.try_model, Node.judge_answers)
def on_ratings_round(state: WizardState) -> Command[Any]:
    """Start the round, go and collect more judgements, or back to what next."""
    picked = str(state["intent"].get("value"))
    if picked == "start":
        return go(Node.start_preference_round)
    if picked == "try":
        return go(Node.try_model, {"try_back": Node.choose_next.value})
    if picked == "judge":
        return go(Node.judge_answers, {"judge_index": 0})
    return go(Node.choose_next)


@routes(Node.watch_training, Node.choose_next)
def start_preference_round(state: WizardState) -> Command[Any]:
    """Save the judgements as a version, check it, and launch `mtw train --method … --from-run …` in its own process."""
    from tools import jobs
    from tools.dataset.collect import tally, training_version
    from tools.dataset.store import checked
    from tools.models.catalog import TINY_RANDOM
    from tools.train.config import load_run_config

    store = _judgements(state)
    from_run = str(train_of(state)["run_dir"])
    model = load_run_config(from_run).model
    method = tally(store).method
    try:
        version = training_version(store, note="judgements from the chat")
        report = checked(version.path)
        errors = [i for i in report.issues if i.severity == "error" and i.code != "too_few_examples"]
        if errors:
            say(f"The judgements have a problem to fix first: {errors[0].message} {errors[0].fix}")
            return go(Node.choose_next)
        # contradicting judgements, repeats or private data: worth knowing before it trains on them
        warned = sorted((i for i in report.issues if i.severity == "warning"),
                        key=lambda i: FIRST_SAID.index(i.code) if i.code in FIRST_SAID else len(FIRST_SAID))
        if warned:
            say(f"Checked the judgements: {len(warned)} worth a look, first: {warned[0].message} {warned[0].fix}")
        sets = dict(ROUND_TRY_SETS if model == TINY_RANDOM else ROUND_SETS)
        run_dir = project_dir(slugify(_project(state))) / "runs" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        record = jobs.start_detached(str(version.path), model, run_dir, sets=[f"{k}={v}" for k, v in sets.items()],
                                     max_steps=ROUND_TRY_STEPS if model == TINY_RANDOM else None,
                                     project=slugify(_project(state)), method=method, from_run=from_run)
    except (MTWError, OSError) as exc:
        say(f"The preference round could not start: {exc}")
        return go(Node.choose_next)
    stage("train")
    say(f"Preference round started ({method.upper()} on {version.examples} judgements, judgement set "
        f"`{version.version}`, run `{record.id}`). Live progress follows; the run folder is `{run_dir}`.")
    fresh = {"evaluated": False, "exported_name": "", "checked_export": False, "export_name": ""}
    return go(Node.watch_training, {**fresh, "run_dir": str(run_dir), "pref_from": from_run,
                                    "train_outcome": {"status": "running"}, "events_since": 0})


# ---------------------------------------------------------------- the effect: v_n and v_n+1


@routes(Node.choose_next)
async def compare_round_versions(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """After a preference round's comparison with its base: the new version against the one it started from."""
    from tools.evaluate.rounds import JUDGED, compare_round

    judge = runtime.context.llm.model if state.get("llm_ok") else None
    before = Path(str(playground_of(state).get("pref_from") or "")).name
    say(f"And against `{before}`, the version this round started from: on the judgements it held out and on the "
        "test prompts.")
    try:
        report = await asyncio.to_thread(compare_round, train_of(state)["run_dir"], judge_model=judge)
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return go(Node.choose_next)
    rows = [["Your judged prompts" if cat == JUDGED else cat.replace("_", " ").capitalize(), str(t["after"]),
             str(t["before"]), str(t["tie"])] for cat, t in report["categories"].items()]
    table(f"New version vs {before}: wins per category ({report['judged_by']})",
          ["Category", "New version", before, "Tie"], rows)
    say(f"**Round verdict.** {report['verdict']}")
    return go(Node.choose_next)
