"""Input that comes outside a question's own answers: a turn begun with no question open (a message after a stopped
turn, a reopened conversation), a file sent where none was asked for, and the end of a training run the chat was
showing.

The chat hands every such input to the graph as it came; these nodes decide what it means, so the chat only renders.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.types import Command

from assistant.conversation import go
from assistant.nodes import Node, routes
from assistant.state import WizardState
from assistant.ui_events import say
from tools.jobs import run_outcome

LATE = "late"
"""The key of a reply that came while no question was open: {"late": what the user sent, "stopped": bool}."""
REOPENED = "reopened"
"""The key of the input a reopened conversation gives when it has no question open and no step left to finish."""


@routes(Node.listen, Node.check_environment, Node.understand)
def enter(state: WizardState) -> Command[Any]:
    """Where every turn that is not an answer to an open question begins: a new conversation starts with the machine
    check; a message that came while no question was open (its turn was stopped, or cut short by a failure) answers
    the question asked last, in place of the answer that turn was working on; a reopened conversation with nothing
    open asks its last question again, or starts again when none was ever asked."""
    reply = state.get("reply")
    if isinstance(reply, dict) and reply.get(REOPENED):
        if state.get("question"):
            return go(Node.listen)
        say("I could not find where this conversation left off, so let's start again.")
        return go(Node.check_environment, {"reply": None})
    late = reply.get(LATE) if isinstance(reply, dict) else None
    if late is None or not state.get("question"):
        return go(Node.check_environment, {"reply": None})
    if reply.get("stopped"):  # type: ignore[union-attr]
        say("I stopped waiting for the assistant model and took your new message instead.")
    return go(Node.understand, {"reply": late})


@routes(Node.listen)
def misplaced_file(state: WizardState) -> Command[Any]:
    """A file sent at a question that does not ask for one: not taken in; the question is asked again."""
    say("I'll look at files when I ask for your examples; for now, here is the question again.")
    return go(Node.listen)


@routes(Node.listen, Node.after_training)
async def read_outcome(state: WizardState) -> Command[Any]:
    """A training run the chat was showing has ended: read how (done, stopped, failed) and go on from there. The end
    of a run that is no longer the one being waited for changes nothing: the open question stands."""
    run_dir = str((state.get("intent") or {}).get("value") or "")
    question = state.get("question") or {}
    if question.get("kind") != "training" or question.get("run_dir") != run_dir:
        return go(Node.listen)
    outcome = await asyncio.to_thread(run_outcome, run_dir)
    return go(Node.after_training, {"intent": {"kind": "outcome", "value": outcome, "by": "click"}})
