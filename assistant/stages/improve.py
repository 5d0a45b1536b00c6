"""Round 2 and after: name the weakest categories, draft for them, retrain as the next version, compare, promote."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from langgraph.types import Command

from assistant.conversation import ask, go
from assistant.nodes import Node, routes
from assistant.stages.author import can_draft, round_focus, store_of
from assistant.state import WizardState, drafting_of, spec_of, train_of
from assistant.ui_events import say, stage, table
from tools.evaluate.report_model import load_report


@routes(Node.choose_next, asks=(Node.on_improve,))
async def plan_improvement(state: WizardState) -> Command[Any]:
    """The next round from the judge's scores, the user's ratings and the coverage: the weakest areas first."""
    from tools.evaluate.playground import load_ratings
    from tools.improve import plan_round

    stage("dataset")
    spec = spec_of(state)
    run_dir = str(train_of(state).get("run_dir") or "")
    store = await asyncio.to_thread(store_of, state)
    report = await asyncio.to_thread(load_report, run_dir) if run_dir else None
    ratings = await asyncio.to_thread(load_ratings, run_dir) if run_dir else []
    plan = await asyncio.to_thread(plan_round, spec, store.examples(), report=report, ratings=ratings)
    if not plan.areas:
        say("I found nothing to work on: add examples of a new kind, or try the model on harder prompts.")
        return go(Node.choose_next)
    table(f"Next round: {plan.round}", ["Area", "Why", "Draft"],
          [[a.name, "; ".join(a.reasons), str(a.draft)] for a in plan.areas])
    say(plan.summary() + " Then I'll train it as the next version and compare the two.")
    areas = [asdict(a) for a in plan.areas]
    choices = {"upload": "Upload more examples instead", "no": "Not now"}
    if can_draft(state):
        choices = {"yes": f"Draft {areas[0]['draft']} {areas[0]['name'].lower()}", **choices}
    return ask(state, "Start the round?", then=Node.on_improve, stage="dataset", choices=choices,
               update={"round_areas": areas})


@routes(Node.draft_batch, Node.choose_next, Node.ask_file)
def on_improve(state: WizardState) -> Command[Any]:
    """Draft for the weakest area (the others follow), upload instead, or back to the hub.

    A new round trains a new run: what the last run had (its comparison, its export) belongs to it.
    """
    picked = str(state["intent"].get("value"))
    if picked == "no":
        return go(Node.choose_next)
    fresh = {"evaluated": False, "exported_name": "", "checked_export": False, "export_name": ""}
    if picked == "upload":
        return go(Node.ask_file, {**fresh, "adding": True})
    return go(Node.draft_batch, {**fresh, **round_focus(drafting_of(state).get("round_areas") or [])})
