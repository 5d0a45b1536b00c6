"""Deploy: put the tuned model into Ollama with progress and checks; with Ollama away, everything to finish later
and a way to try again once it runs."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Command

from assistant.context import WizardContext
from assistant.conversation import ask, go, not_done
from assistant.nodes import Node, routes
from assistant.routing import NO, YES
from assistant.state import WizardState, deploy_of, spec_of, train_of
from assistant.ui_events import QUICK_SKIPS, inert, progress_event, say, stage
from tools.errors import MTWError
from tools.project import ProjectSpec, project_dir, slugify
from tools.sense import control_word


@routes(Node.compare_versions, Node.ask_export_name, asks=(Node.on_export_problem,))
async def export_model(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Put the model into Ollama (or, with Ollama away, write everything and give the exact commands)."""
    from tools.export.pipeline import export_run

    stage("deploy", skipped=tuple(not_done(state)))
    if not deploy_of(state).get("export_name"):
        return go(Node.ask_export_name)
    name = str(deploy_of(state)["export_name"])
    quantize = str(deploy_of(state).get("export_quant") or "") or None
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
        result = await asyncio.to_thread(export_run, Path(train_of(state)["run_dir"]), name, dry_run=not ok,
                                         say=notes.append, progress=report, quantize=quantize)
    except MTWError as exc:
        return ask(state, f"The export did not work: {exc.message} {exc.fix}", then=Node.on_export_problem,
                   stage="deploy", choices={"again": "Try again", "back": "Back to what next"}, effects=("again",))
    lines = [f"**{result.name}** — route *{result.route}*: {result.reason}"]
    lines += [f"- {'✅' if c.ok else '❌'} {c.message}" + (f" **Fix:** {c.fix}" if c.fix and not c.ok else "")
              for c in result.checks]
    if not ok:
        lines.append(f"\n{note}\n\nSo I wrote everything to `{result.export_dir}`. When Ollama runs, create the model "
                     "with:\n\n" + "\n".join(f"`{c}`" for c in result.commands))
        say("\n".join(lines))
        return ask(state, "Start Ollama, then click **Try again now** — I'll check that it is back first.",
                   then=Node.on_export_problem, stage="deploy", effects=("again",),
                   choices={"again": "Try again now", "back": "Back to what next"}, update={"export_name": name})
    lines.append(f"\nIt is in your Ollama. Run it with:\n\n`{shlex.join(['ollama', 'run', result.name])}`")
    say("\n".join(lines))
    return go(Node.compare_versions, {"exported_name": result.name, "export_name": "", "export_quant": ""})


@routes(Node.export_model, Node.choose_next, Node.listen)
async def on_export_problem(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Try the export again once Ollama answers; or go back to the choices (a later export asks its name again)."""
    if state["intent"].get("value") != "again":
        return go(Node.choose_next, {"export_name": "", "export_quant": ""})
    up, note, missing = await runtime.context.llm.status()
    if not (up or missing):
        say(f"Ollama is still not answering: {note}")
        return go(Node.listen)
    return go(Node.export_model)


STEM_WORDS = 3
STEM_BREAK = frozenset("a an the and or of for from to into with by on in at about that".split())


def model_stem(spec: ProjectSpec) -> str:
    """The registry stem of a project's models: 'PM-UserStories' for 'User stories from ideas', 'PM-TeamUserStories'
    for 'Team user stories' (its words up to the first small word, at most three)."""
    picked: list[str] = []
    for word in slugify(spec.name).split("-"):
        if picked and (word in STEM_BREAK or len(picked) >= STEM_WORDS):
            break
        picked.append(word)
    return "PM-" + "".join(w.capitalize() for w in picked)



@routes(asks=(Node.on_quick,))
async def quick_model(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """The quick path: a styled model from the spec alone (SYSTEM prompt, a few examples, the guide's parameters)."""
    from tools.export.pipeline import export_from_spec
    from tools.registry import suggest_name

    stage("deploy", skipped=QUICK_SKIPS)
    spec = spec_of(state)
    name = str(deploy_of(state).get("quick_name")
               or await asyncio.to_thread(suggest_name, model_stem(spec) + "-Styled"))
    up, note, missing = await runtime.context.llm.status()
    ollama_up = up or missing
    say(f"Making **{name}**: your project's description as its SYSTEM prompt, a few example conversations and the "
        "guide's parameters, on the base model in your Ollama — no training.")
    notes: list[str] = []
    try:
        result = await asyncio.to_thread(export_from_spec, spec.name, name, dry_run=not ollama_up, say=notes.append)
    except MTWError as exc:
        return ask(state, f"That did not work: {exc.message} {exc.fix}", then=Node.on_quick, stage="deploy",
                   skipped=list(QUICK_SKIPS), choices={"again": "Try again", "train": "Go on to training"},
                   effects=("again",),
                   update={"quick_name": name})
    lines = [*notes, result.reason]
    lines += [f"- {'✅' if c.ok else '❌'} {c.message}" + (f" **Fix:** {c.fix}" if c.fix and not c.ok else "")
              for c in result.checks]
    if result.dry_run:
        lines.append(f"\n{note}\n\nThe Modelfile is ready at `{result.modelfile}`. When Ollama runs:\n\n"
                     + "\n".join(f"`{c}`" for c in result.commands))
        say("\n".join(lines))
        return ask(state, "Start Ollama, then click **Try again now** — or go on to training.", then=Node.on_quick,
                   stage="deploy", skipped=list(QUICK_SKIPS),
                   choices={"again": "Try again now", "train": "Go on to training"}, effects=("again",),
                   update={"quick_name": name})
    lines.append(f"\nTry it: `{shlex.join(['ollama', 'run', name])}`")
    say("\n".join(lines))
    return ask(state, f"**{name}** is in your Ollama. Try it here, or go on to training a model on your own "
                      "examples (it learns your style far better than a prompt can).", then=Node.on_quick,
               stage="deploy", skipped=list(QUICK_SKIPS), finished=True,
               choices={"try": "Try it", "train": "Go on to training"},
               update={"quick_name": name, "quick_made": True})


@routes(Node.choose_data, Node.try_model, Node.quick_model, Node.listen)
async def on_quick(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Try the styled model, try the quick path again once Ollama is back, or go on to training."""
    picked = state["intent"].get("value")
    if picked == "try":
        return go(Node.try_model,
                  {"try_ollama": deploy_of(state).get("quick_name", ""), "try_back": Node.choose_data.value})
    if picked == "again":
        up, note, missing = await runtime.context.llm.status()
        if not (up or missing):
            say(f"Ollama is still not answering: {note}")
            return go(Node.listen)
        return go(Node.quick_model)
    return go(Node.choose_data)


def project_stem(spec: dict[str, Any]) -> str:
    """The name this project's models go by: the stem of its latest trained export (the user may have named v1
    themselves, and v2 should follow it), else the stem made from the project's name."""
    from tools.registry import latest_stem

    project = ProjectSpec(**spec)
    return latest_stem(project_dir(slugify(project.name)) / "runs") or model_stem(project)


QUANT_BYTES = {"none": 2.0, "q8_0": 1.07, "q4_K_M": 0.6}
QUANT_ALIASES = {"q8": "q8_0", "q8_0": "q8_0", "8": "q8_0", "8 bit": "q8_0", "8-bit": "q8_0", "q4": "q4_K_M",
                 "q4_k_m": "q4_K_M", "q4km": "q4_K_M", "4": "q4_K_M", "4 bit": "q4_K_M", "4-bit": "q4_K_M",
                 "exact": "none", "no": "none", "f16": "none", "16 bit": "none", "16-bit": "none"}
"""What people type for each size."""
"""Bytes per weight: 16-bit as trained, 8-bit, and the 4-bit mix Ollama serves most models in."""


@routes(asks=(Node.on_export_name,))
async def ask_export_name(state: WizardState) -> Command[Any]:
    """Ask the model's name in Ollama, suggesting the registry's next version."""
    from tools.registry import suggest_name

    suggested = await asyncio.to_thread(lambda: suggest_name(project_stem(state["spec"])))
    return ask(state, f"What should the model be called in Ollama? I suggest **{suggested}** — the next version of "
                      "this project's model. Click it, or type another name.", then=Node.on_export_name,
               stage="deploy", free_text=True, choices={"suggested": f"Use {suggested}", "back": "Not now"},
               update={"export_suggested": suggested})


@routes(Node.ask_quantize, Node.choose_next, Node.listen)
async def on_export_name(state: WizardState) -> Command[Any]:
    """Take the name (a version is added when it has none; a registered name is never reused), then the size."""
    from tools.export.names import name_problem
    from tools.registry import split_name, suggest_name

    value = str(state["intent"].get("value") or "").strip()
    word = value.lower().strip(" .!")
    if value == "back" or word in NO or word in ("back", "go back"):
        return go(Node.choose_next, {"export_name": ""})
    if word in YES:
        value = "suggested"  # "yes" to "I suggest X" is X, never a model called "yes"
    elif control_word(value):
        say(f"“{value}” cannot be a model name. Click **Use {deploy_of(state).get('export_suggested')}**, or type "
            "the name you want (e.g. PM-UserStories-v2).")
        return go(Node.listen)
    name = (str(deploy_of(state).get("export_suggested")) if value == "suggested"
            else value.removeprefix("ollama run ").strip())
    final = await asyncio.to_thread(suggest_name, name) if not name_problem(name) else name
    if why := name_problem(name) or name_problem(final):  # the version added may make it too long
        say(inert(why))
        return go(Node.listen)
    if split_name(name)[1] is not None and final != name:
        say(f"**{name}** is already registered. Use **{final}** (the next version), or type another name.")
        return go(Node.listen, {"export_suggested": final})
    return go(Node.ask_quantize, {"export_name": final})


@routes(asks=(Node.on_quantize,))
async def ask_quantize(state: WizardState) -> Command[Any]:
    """Explain the quantisation choice in one sentence, with the size of each."""
    from tools.download import human_bytes
    from tools.export.pipeline import base_entry
    from tools.train.config import load_run_config

    entry = await asyncio.to_thread(lambda: base_entry(load_run_config(train_of(state)["run_dir"]).model))
    params = entry.params_b * 1e9 if entry else 0.0

    def size(key: str) -> str:
        return f" (~{human_bytes(params * QUANT_BYTES[key])})" if params else ""

    return ask(state, f"How compact should **{deploy_of(state)['export_name']}** be? Quantisation stores each "
                      "weight in fewer bits: a smaller, faster model that answers almost as well (q4_K_M is what "
                      "Ollama serves most models in; none keeps the trained weights exactly).", then=Node.on_quantize,
               stage="deploy",
               choices={"none": f"None — exact{size('none')}", "q8_0": f"q8_0 — nearly exact{size('q8_0')}",
                        "q4_K_M": f"q4_K_M — smallest{size('q4_K_M')}"}, effects=("none", "q8_0", "q4_K_M"),
               aliases=QUANT_ALIASES)


@routes(Node.export_model)
def on_quantize(state: WizardState) -> Command[Any]:
    """Export with the chosen quantisation."""
    picked = str(state["intent"].get("value"))
    return go(Node.export_model, {"export_quant": "" if picked == "none" else picked})


@routes(Node.show_comparison, Node.choose_next)
async def compare_versions(state: WizardState) -> Command[Any]:
    """After an export: the earlier version of the same model side by side, and the offer to promote the better."""
    from tools import registry

    name = str(deploy_of(state).get("exported_name") or "")
    try:
        record = await asyncio.to_thread(registry.get, name)
        others = [m for m in await asyncio.to_thread(registry.list_models) if m.stem == record.stem
                  and m.name != name and m.version < record.version]
    except MTWError:
        return go(Node.choose_next)
    if not others:
        return go(Node.choose_next)
    return go(Node.show_comparison, {"comparing": [others[0].name, name]})
