"""Interview: ask what the model is for, fill the project spec, confirm it and save it (never over another's)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command
from pydantic import BaseModel, ConfigDict

from assistant import prompts
from assistant.context import WizardContext
from assistant.conversation import ask, call_model, go
from assistant.state import WizardState
from assistant.ui_events import say, stage, title
from tools.errors import MTWError
from tools.project import (
    MAX_FIELD_CHARS,
    ProjectSpec,
    apply_answer,
    describe,
    load_spec,
    next_slot,
    project_owner,
    save_spec,
    slugify,
)

EDITABLE = {"purpose": "What it does", "task_type": "Kind", "audience": "Audience", "house_style": "House style",
            "samples": "Samples", "never_do": "Never-do rules", "labels": "Labels", "entity_types": "Entities",
            "name": "Name"}


class SpecUpdate(BaseModel):
    """The fields one answer fills (LLM structured output); empty means 'not in this answer'."""

    model_config = ConfigDict(extra="forbid")
    name: str = ""
    purpose: str = ""
    task_type: Literal["generation", "classification", "entity_extraction", ""] = ""
    audience: str = ""
    house_style: str = ""
    never_do: list[str] = []
    labels: list[str] = []
    entity_types: list[str] = []


def _spec(state: WizardState) -> ProjectSpec:
    return ProjectSpec(**state["spec"])


def ask_slot(state: WizardState) -> Command[Any]:
    """Ask the next open slot (or the one the user chose to change)."""
    stage("interview")
    spec = _spec(state)
    slot = state.get("force_slot") or next_slot(spec, state.get("asked_slots", []))
    if slot is None:
        return go("confirm_spec")
    if slot == "name":
        return ask(state, "What should the project be called? (a short name, e.g. “Story writer”)", then="fill_slot",
                   stage="interview", free_text=True, slot="name")
    q = prompts.questions()[slot]
    tries = state.get("attempts", {}).get(slot, 0)
    return ask(state, q["follow_up"] if tries else q["question"], then="fill_slot", stage="interview",
               choices=q.get("choices", {}), free_text=slot != "task_type", optional=bool(q.get("optional")),
               slot=slot)


async def fill_slot(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Fill the spec from the answer: through the assistant model's structured output, or as typed."""
    slot = str(state["question"].get("slot"))
    answer = str((state.get("intent") or {}).get("value") or "").strip()
    spec = _spec(state)
    tries = state.get("attempts", {}).get(slot, 0) + 1
    update: dict[str, Any] = {"asked_slots": [*state.get("asked_slots", []), slot], "force_slot": "",
                              "attempts": {**state.get("attempts", {}), slot: tries}}
    if not answer:
        if state["question"].get("optional"):
            return go("ask_slot", update)
        say("That message was empty — no problem, here is the question again.")
        return go("listen")
    if len(answer) > MAX_FIELD_CHARS:
        say(f"That was a long message ({len(answer):,} characters); I kept the first {MAX_FIELD_CHARS:,} for "
            "your project. Long samples are better added later as dataset examples.")
    if state.get("force_slot") == slot or slot == "name":
        empty: Any = [] if isinstance(getattr(spec, slot), list) else None if slot == "task_type" else ""
        spec = spec.model_copy(update={slot: empty})
    answered_by_model = False
    if slot not in ("samples", "name", "task_type"):
        prompt = (f"Spec so far: {json.dumps(spec.model_dump(), ensure_ascii=False)}\n"
                  f"Question (about '{slot}'): {prompts.questions()[slot]['question']}\n"
                  f"Answer: {answer[:MAX_FIELD_CHARS]}\nReturn the fields this answer fills.")
        upd = await call_model(state, runtime, prompt, SpecUpdate, system=prompts.text("interview_system.md"))
        answered_by_model = upd is not None
        if upd is not None:
            filled = {k: v for k, v in upd.model_dump().items() if v}
            spec = ProjectSpec(**{**spec.model_dump(), **filled})
    # as typed: without the model (or when it failed this turn), after a follow-up, for samples (verbatim),
    # for the kind and the name
    if not getattr(spec, slot) and (not answered_by_model or tries >= 2):
        spec = apply_answer(spec, slot, answer)
    if slot == "task_type" and not spec.task_type:
        say("I could not tell which kind you meant; please click one of the buttons.")
    update["spec"] = spec.model_dump()
    if state.get("spec_path") and slot == state.get("force_slot"):
        return go("confirm_spec", update)
    return go("ask_slot", update)


def confirm_spec(state: WizardState) -> Command[Any]:
    """Show the spec and ask the user to confirm or change something."""
    stage("interview")
    spec = _spec(state)
    if not spec.name:
        spec = spec.model_copy(update={"name": " ".join(spec.purpose.split()[:6]).strip(".,;:") or "My model"})
    return ask(state, "Here is your project. Is this right?", then="on_confirm", stage="interview", kind="confirm",
               choices={"confirm": "Looks right", "edit": "Change something"}, spec_md=describe(spec),
               update={"spec": spec.model_dump()})


def on_confirm(state: WizardState) -> Command[Any]:
    """Save when confirmed, otherwise ask what to change."""
    return go("save_project" if state["intent"].get("value") == "confirm" else "choose_edit")


def choose_edit(state: WizardState) -> Command[Any]:
    """Ask which part to change; that slot is asked again next."""
    spec = _spec(state)
    options = {k: v for k, v in EDITABLE.items() if k not in ("labels", "entity_types") or getattr(spec, k)}
    return ask(state, "What would you like to change?", then="on_edit", stage="interview", choices=options)


def on_edit(state: WizardState) -> Command[Any]:
    """Ask the chosen slot again."""
    return go("ask_slot", {"force_slot": str(state["intent"].get("value"))})


async def save_project(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Save the confirmed spec; a name another conversation uses is never overwritten: continue it or rename."""
    spec = _spec(state)
    thread = runtime.context.thread_id or None
    exists, owner = await asyncio.to_thread(project_owner, spec.name)
    if exists and owner != thread and state.get("spec_path") != _path_of(spec.name):
        return ask(state, f"A project called **{spec.name}** already exists on this machine, with its own data and "
                          "runs. Continue that project, or give this one a new name?", then="on_name_taken",
                   stage="interview", choices={"continue": f"Continue {spec.name}", "rename": "Give a new name"})
    try:
        path = await asyncio.to_thread(save_spec, spec, thread)
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return go("choose_data", {"spec_path": ""})
    title(spec.name)
    say(f"Saved your project **{spec.name}** to `{path}`. You can edit that file any time.")
    return go("choose_data", {"spec_path": str(path)})


def _path_of(name: str) -> str:
    from tools.project import project_dir

    return str(project_dir(slugify(name)) / "spec.json")


def on_name_taken(state: WizardState) -> Command[Any]:
    """Continue the existing project as it is saved, or ask for a new name."""
    if state["intent"].get("value") == "continue":
        spec = load_spec(_spec(state).name)
        title(spec.name)
        say(f"Continuing **{spec.name}** as it was saved.")
        return go("choose_data", {"spec": spec.model_dump(), "spec_path": _path_of(spec.name)})
    return go("ask_slot", {"force_slot": "name"})


def confirm_start_over(state: WizardState) -> Command[Any]:
    """Start a new model in this conversation (what was saved stays saved)."""
    return ask(state, "Start a new model from the beginning? Your saved projects, datasets, runs and models stay "
                      "where they are.", then="on_start_over", stage="interview",
               choices={"yes": "Start a new model", "no": "Stay here"})


def on_start_over(state: WizardState) -> Command[Any]:
    """Reset the conversation's journey, or return to the question before."""
    if state["intent"].get("value") != "yes":
        return go("choose_next" if state.get("train_outcome") else "choose_data" if state.get("spec_path")
                  else "ask_slot")
    say("A fresh start — tell me about the new model.")
    return go("ask_slot", {"spec": ProjectSpec().model_dump(), "asked_slots": [], "attempts": {}, "force_slot": "",
                           "spec_path": "", "data_path": "", "data_ok": False, "run_dir": "", "train_outcome": {},
                           "evaluated": False, "exported_name": "", "checked_export": False, "train_sets": {},
                           "train_model": "", "preset": "", "drafts": [], "draft_index": 0})
