"""Onboard: greet, check the machine and the assistant model, offer to download the model when it is missing."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Command

from assistant.context import WizardContext
from assistant.conversation import ask, go
from assistant.nodes import Node, routes
from assistant.state import WizardState, interview_of
from assistant.ui_events import progress_event, say, stage, table
from tools import doctor
from tools.errors import MTWError
from tools.project import ProjectSpec

GUIDED = ("I'll work as a guided form for now: I ask, you answer, and buttons help where there is a choice. "
          "Understanding free-text answers, drafting examples and the judge need the assistant model in Ollama.")
MARK = {"ok": "✅", "warning": "⚠️", "problem": "❌"}


@routes(Node.ask_slot, asks=(Node.pull_assistant_model,))
async def check_environment(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Greet, check the machine and the assistant model, and pick guided mode when Ollama is missing."""
    stage("onboard")
    say("Hi! I'm the **Model Training Wizard**. I'll help you fine-tune a model on your own examples and run it "
        "in your Ollama — step by step, in plain words. Click the buttons or just type: you can answer, ask a "
        "question, change a setting or say where to go at any point. First, a quick look at this machine.")
    settings = runtime.context.settings
    ok, note, missing = await runtime.context.llm.status()
    checks = await asyncio.to_thread(
        lambda: [doctor.check_workspace(settings), doctor.check_memory(), doctor.check_disk(settings),
                 *doctor.check_accelerator()])
    table("Your machine", ["", "Check", "Result"],
          [[MARK[c.status], c.name, c.detail + (f" — {c.fix}" if c.fix else "")] for c in checks])
    if ok:
        say(f"The assistant model **{runtime.context.llm.model}** is ready in Ollama.")
    elif not missing:
        say(f"{note}\n\n{GUIDED}")
    update = {"llm_ok": ok, "llm_note": note, "spec": state.get("spec") or ProjectSpec().model_dump(),
              "asked_slots": interview_of(state).get("asked_slots", []),
              "attempts": interview_of(state).get("attempts", {})}
    if missing:
        model = runtime.context.llm.model
        return ask(state, f"Ollama runs, but the assistant model **{model}** is not downloaded yet. Download it "
                          "now? It is a few GB and takes a few minutes.", then=Node.pull_assistant_model,
                   stage="onboard", choices={"pull": f"Download {model}", "skip": "Continue without it"},
                   effects=("pull",), update=update)
    return go(Node.ask_slot, update)


@routes(Node.ask_slot)
async def pull_assistant_model(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Pull the assistant model with progress, or go on as a guided form."""
    if (state.get("intent") or {}).get("value") != "pull":
        say(GUIDED)
        return go(Node.ask_slot)
    writer, model = get_stream_writer(), runtime.context.llm.model
    try:
        await runtime.context.llm.pull(
            lambda status, done, total: writer(progress_event("pull", f"Downloading {model}", status, done, total)))
    except MTWError as exc:
        say(f"The download did not finish: {exc.message} {exc.fix}\n\n{GUIDED}")
        return go(Node.ask_slot)
    ok, note, _ = await runtime.context.llm.status()
    say(f"**{model}** is downloaded and ready." if ok else f"{note}\n\n{GUIDED}")
    return go(Node.ask_slot, {"llm_ok": ok, "llm_note": note})
