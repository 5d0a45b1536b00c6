"""The assistant model itself: what to do when it cannot write drafts — a bigger one to pull with a button, kept for
later conversations — instead of an environment variable to set."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Command

from assistant.context import WizardContext
from assistant.conversation import ask, go
from assistant.nodes import Node, routes
from assistant.state import WizardState, drafting_of
from assistant.ui_events import progress_event, say
from tools.errors import MTWError


def offer_better_model(state: WizardState, runtime: Runtime[WizardContext], why: str) -> Command[Any]:
    """What to do when the assistant model cannot draft: the bigger model to pull (a button), once more, or a file."""
    from assistant.llm import better_model

    current = runtime.context.llm.model
    better = better_model(current)
    text = f"{why} Small assistant models like **{current}** often cannot write good examples."
    choices: dict[str, str] = {}
    if better:
        text += (f" A bigger one writes far better drafts: **{better[0]}** (about {better[1]}, downloaded once, "
                 "then used for everything the assistant does).")
        choices["better"] = f"Get {better[0]} ({better[1]})"
    choices |= {"again": "Try once more", "upload": "Upload a file of examples", "back": "Go on without drafts"}
    return ask(state, text + " What would you like to do?", then=Node.on_weak_drafts, stage="dataset",
               choices=choices, effects=("better",), update={"better_model": better[0] if better else ""})


@routes(Node.after_drafts, Node.switch_assistant_model, Node.draft_batch, Node.ask_file)
def on_weak_drafts(state: WizardState) -> Command[Any]:
    """Pull the bigger model, draft once more, upload a file, or go on with what there is."""
    picked = state["intent"]["value"]
    if picked == "better":
        return go(Node.switch_assistant_model)
    if picked == "again":
        return go(Node.draft_batch)
    if picked == "upload":
        return go(Node.ask_file, {"adding": True})
    return go(Node.after_drafts, {"drafts": [], "draft_index": 0, "draft_focus": {}})


@routes(Node.after_drafts)
async def switch_assistant_model(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Download the bigger assistant model with progress and use it from the next message on."""
    from tools.settings import choose_assistant_model

    name = str(drafting_of(state).get("better_model") or "")
    writer = get_stream_writer()
    other = runtime.context.llm.with_model(name)
    try:
        await other.pull(lambda status, done, total: writer(progress_event("pull", f"Downloading {name}", status,
                                                                            done, total)))
        await asyncio.to_thread(choose_assistant_model, name)
    except MTWError as exc:
        say(f"The download did not finish: {exc.message} {exc.fix}")
        return go(Node.after_drafts)
    say(f"**{name}** is downloaded and is the assistant's model from your next message on (drafting, reading your "
        "answers and the judge). Click **Draft 5 more** to draft with it.")
    return go(Node.after_drafts, {"drafts": [], "draft_index": 0, "draft_focus": {}})
