"""Deploy: put the tuned model into Ollama with progress and checks; with Ollama away, everything to finish later
and a way to try again once it runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Command

from assistant.context import WizardContext
from assistant.conversation import ask, go
from assistant.state import WizardState
from assistant.ui_events import progress_event, say, stage
from tools.errors import MTWError
from tools.project import ProjectSpec, slugify


async def export_model(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Put the model into Ollama (or, with Ollama away, write everything and give the exact commands)."""
    from tools.export.pipeline import export_run
    from tools.registry import suggest_name

    stage("deploy")
    spec = ProjectSpec(**state["spec"])
    base = "PM-" + "".join(w.capitalize() for w in slugify(spec.name).split("-")[:2])
    name = str(state.get("export_name") or await asyncio.to_thread(suggest_name, base))
    up, note, missing = await runtime.context.llm.status()
    ok = up or missing  # the export needs Ollama, not the assistant model
    writer, loop = get_stream_writer(), asyncio.get_running_loop()
    shown: list[tuple[str, int]] = []

    def report(what: str, done: int, total: int) -> None:
        # called from the export thread: hand each new phase or percent to the event loop, which owns the stream
        key = (what, 100 * done // total if total else -1)
        if not shown or shown[-1] != key:
            shown.append(key)
            loop.call_soon_threadsafe(writer, progress_event("export", "Exporting", what, done, total))

    notes: list[str] = []
    try:
        result = await asyncio.to_thread(export_run, Path(state["run_dir"]), name, dry_run=not ok, say=notes.append,
                                         progress=report)
    except MTWError as exc:
        return ask(state, f"The export did not work: {exc.message} {exc.fix}", then="on_export_problem",
                   stage="deploy", choices={"again": "Try again", "back": "Back to what next"}, effects=("again",))
    lines = [f"**{result.name}** — route *{result.route}*: {result.reason}"]
    lines += [f"- {'✅' if c.ok else '❌'} {c.message}" + (f" **Fix:** {c.fix}" if c.fix and not c.ok else "")
              for c in result.checks]
    if not ok:
        lines.append(f"{note}\n\nSo I wrote everything to `{result.export_dir}`. When Ollama runs, create the model "
                     "with:\n\n" + "\n".join(f"`{c}`" for c in result.commands))
        say("\n".join(lines))
        return ask(state, "Start Ollama, then click **Try again now** — I'll check that it is back first.",
                   then="on_export_problem", stage="deploy", effects=("again",),
                   choices={"again": "Try again now", "back": "Back to what next"}, update={"export_name": name})
    if result.ok:
        lines.append(f"Try it: `ollama run {result.name}`")
    say("\n".join(lines))
    return go("choose_next", {"exported_name": result.name, "export_name": ""})


async def on_export_problem(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Try the export again once Ollama answers; or go back to the choices."""
    if state["intent"].get("value") != "again":
        return go("choose_next")
    up, note, missing = await runtime.context.llm.status()
    if not (up or missing):
        say(f"Ollama is still not answering: {note}")
        return go("listen")
    return go("export_model")


def model_stem(spec: ProjectSpec) -> str:
    """The registry stem of a project's models: 'PM-UserStories' for 'User stories from ideas'."""
    return "PM-" + "".join(w.capitalize() for w in slugify(spec.name).split("-")[:2])


async def quick_model(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """The quick path: a styled model from the spec alone (SYSTEM prompt, a few examples, the guide's parameters)."""
    from tools.export.pipeline import export_from_spec
    from tools.registry import suggest_name

    stage("deploy")
    spec = ProjectSpec(**state["spec"])
    name = str(state.get("quick_name") or await asyncio.to_thread(suggest_name, model_stem(spec) + "-Styled"))
    up, note, missing = await runtime.context.llm.status()
    ollama_up = up or missing
    say(f"Making **{name}**: your project's description as its SYSTEM prompt, a few example conversations and the "
        "guide's parameters, on the base model in your Ollama — no training.")
    notes: list[str] = []
    try:
        result = await asyncio.to_thread(export_from_spec, spec.name, name, dry_run=not ollama_up, say=notes.append)
    except MTWError as exc:
        return ask(state, f"That did not work: {exc.message} {exc.fix}", then="on_quick", stage="deploy",
                   choices={"again": "Try again", "train": "Go on to training"}, effects=("again",),
                   update={"quick_name": name})
    lines = [*notes, result.reason]
    lines += [f"- {'✅' if c.ok else '❌'} {c.message}" + (f" **Fix:** {c.fix}" if c.fix and not c.ok else "")
              for c in result.checks]
    if result.dry_run:
        lines.append(f"{note}\n\nThe Modelfile is ready at `{result.modelfile}`. When Ollama runs:\n\n"
                     + "\n".join(f"`{c}`" for c in result.commands))
        say("\n".join(lines))
        return ask(state, "Start Ollama, then click **Try again now** — or go on to training.", then="on_quick",
                   stage="deploy", choices={"again": "Try again now", "train": "Go on to training"},
                   effects=("again",), update={"quick_name": name})
    lines.append(f"Try it: `ollama run {name}`")
    say("\n".join(lines))
    return ask(state, f"**{name}** is in your Ollama. Try it here, or go on to training a model on your own "
                      "examples (it learns your style far better than a prompt can).", then="on_quick",
               stage="deploy", choices={"try": "Try it", "train": "Go on to training"},
               update={"quick_name": name, "quick_made": True})


async def on_quick(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Try the styled model, try the quick path again once Ollama is back, or go on to training."""
    picked = state["intent"].get("value")
    if picked == "try":
        return go("try_model", {"try_ollama": state.get("quick_name", ""), "try_back": "choose_data"})
    if picked == "again":
        up, note, missing = await runtime.context.llm.status()
        if not (up or missing):
            say(f"Ollama is still not answering: {note}")
            return go("listen")
        return go("quick_model")
    return go("choose_data")
