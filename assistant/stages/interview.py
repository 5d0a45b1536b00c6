"""Interview: ask what the model is for, fill the project spec, confirm it and save it (never over another's)."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Command

from assistant import prompts, slots
from assistant.context import WizardContext
from assistant.conversation import ask, call_model, go
from assistant.nodes import Node, routes
from assistant.state import WizardState, dataset_of, interview_of, spec_of, train_of
from assistant.ui_events import say, stage, title
from tools import sense
from tools.errors import MTWError
from tools.project import (
    MAX_FIELD_CHARS,
    SKIP_WORDS,
    ProjectSpec,
    apply_answer,
    describe,
    load_spec,
    next_slot,
    parse_task_type,
    project_owner,
    save_spec,
    short_name,
    slugify,
    task_from_purpose,
)

EDITABLE = {"purpose": "What it does", "task_type": "Kind", "audience": "Audience", "house_style": "House style",
            "samples": "Samples", "never_do": "Never-do rules", "labels": "Labels", "entity_types": "Entities",
            "name": "Name"}


LEAVABLE = ("audience", "house_style")
"""Required slots a user may leave open (the drafts and the Modelfile do without them); the purpose and the kind
cannot be."""


@routes(Node.confirm_spec, asks=(Node.fill_slot,))
def ask_slot(state: WizardState) -> Command[Any]:
    """Ask the next open slot (or the one the user chose to change)."""
    stage("interview")
    spec = spec_of(state)
    slot = interview_of(state).get("force_slot") or next_slot(spec, interview_of(state).get("asked_slots", []),
                                                               interview_of(state).get("left_open", []))
    if slot is None:
        return go(Node.confirm_spec)
    if slot == "name":
        return ask(state, "What should the project be called? (a short name, e.g. “Story writer”)", then=Node.fill_slot,
                   stage="interview", free_text=True, slot="name")
    q = prompts.questions()[slot]
    tries = interview_of(state).get("attempts", {}).get(slot, 0)
    text = q["follow_up"] if tries else q["question"]
    if tries and slot in LEAVABLE:
        text += " (Not sure yet? Say **skip** and fill it in later.)"
    return ask(state, text, then=Node.fill_slot, stage="interview", choices=q.get("choices", {}),
               free_text=slot != "task_type", optional=bool(q.get("optional")), slot=slot)


@routes(Node.ask_slot, Node.listen, Node.confirm_spec)
async def fill_slot(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Fill the slot asked about: the assistant model's reading when it says what the user said, else the answer as
    typed. 'not sure' or 'skip' fills nothing; a question asked again takes the typed answer as it stands."""
    slot = str(state["question"].get("slot"))
    answer = str((state.get("intent") or {}).get("value") or "").strip()
    spec = spec_of(state)
    tries = interview_of(state).get("attempts", {}).get(slot, 0) + 1
    update: dict[str, Any] = {"asked_slots": [*interview_of(state).get("asked_slots", []), slot], "force_slot": "",
                              "attempts": {**interview_of(state).get("attempts", {}), slot: tries}}
    forced = interview_of(state).get("force_slot") == slot
    if not answer:
        if state["question"].get("optional"):
            return go(Node.ask_slot, update)
        say("That message was empty — no problem, here is the question again.")
        return go(Node.listen)
    if len(answer) > MAX_FIELD_CHARS:
        say(f"That was a long message ({len(answer):,} characters); I kept the first {MAX_FIELD_CHARS:,} for "
            "your project. Long samples are better added later as dataset examples.")
    if slot == "name" and sense.control_word(answer):
        say(f"“{answer}” steers the conversation; it cannot be the project's name. Type a name for the project "
            "(e.g. “Story writer”).")
        return go(Node.listen)
    skipped = answer.lower().strip(" .!") in SKIP_WORDS
    if skipped or sense.unsure(answer):
        return _no_answer(state, slot, skipped, tries, update)
    if slot == "labels" and (answer.lower().startswith(("none", "no ")) or parse_task_type(answer) == "generation"):
        say("Got it — then it writes text, and a model that writes text needs no labels.")
        update["spec"] = spec.model_copy(update={"task_type": "generation", "labels": []}).model_dump()
        return go(Node.ask_slot, update)
    if forced or slot == "name":
        empty: Any = [] if isinstance(getattr(spec, slot), list) else None if slot == "task_type" else ""
        spec = spec.model_copy(update={slot: empty})
    text = answer[:MAX_FIELD_CHARS]
    if slot in slots.SCHEMAS:
        value = await _read(state, runtime, slot, text, spec) if not forced and tries < 2 else None
        value = slots.as_typed(slot, text) if value is None else value
        spec = spec.model_copy(update={slot: value})
    else:
        spec = apply_answer(spec, slot, text)
    if slot == "purpose" and not spec.task_type:
        # the kind comes from the user's own words when they say it beyond doubt, never from a model's guess
        spec = spec.model_copy(update={"task_type": task_from_purpose(text)})
    if slot == "task_type" and not spec.task_type:
        say("I could not tell which kind you meant; please click one of the buttons.")
    update["spec"] = spec.model_dump()
    if interview_of(state).get("spec_path") and forced:
        return go(Node.confirm_spec, update)
    return go(Node.ask_slot, update)


async def _read(state: WizardState, runtime: Runtime[WizardContext], slot: str, answer: str, spec: ProjectSpec
                ) -> Any:
    """The assistant model's reading of the answer for `slot`, or None when it has none worth storing."""
    question = str(state["question"].get("text", ""))
    reply = await call_model(state, runtime, slots.prompt(slot, question, answer), slots.SCHEMAS[slot],
                             system=prompts.text("interview_system.md"), fallback="I took your answer as you typed it.")
    if reply is None:
        return None
    value = getattr(reply, slot)
    return None if slots.problem(slot, value, answer, question, spec) else value


def _no_answer(state: WizardState, slot: str, skipped: bool, tries: int, update: dict[str, Any]) -> Command[Any]:
    """'skip' or 'not sure': an optional slot stays empty; an audience or style is left open (at once for skip, after
    one more try for not sure); the purpose and the kind are asked again in other words."""
    if state["question"].get("optional"):
        return go(Node.ask_slot, update)
    if slot in LEAVABLE and (skipped or tries >= 2):
        say(f"Fine — I'll leave the {slot.replace('_', ' ')} open. You can fill it in when you check the project.")
        return go(Node.ask_slot, {**update, "left_open": [*interview_of(state).get("left_open", []), slot]})
    if not skipped:
        say("No problem — a rough idea is enough, and you can change it later.")
    return go(Node.ask_slot, update)


@routes(asks=(Node.on_confirm,))
def confirm_spec(state: WizardState) -> Command[Any]:
    """Show the spec and ask the user to confirm or change something."""
    stage("interview")
    spec = spec_of(state)
    if not spec.name:
        spec = spec.model_copy(update={"name": short_name(spec.purpose) or "My model"})
    return ask(state, "Here is your project. Is this right?", then=Node.on_confirm, stage="interview", kind="confirm",
               choices={"confirm": "Looks right", "edit": "Change something"}, spec_md=describe(spec),
               update={"spec": spec.model_dump()})


@routes(Node.save_project, Node.choose_edit, Node.confirm_spec, Node.listen)
def on_confirm(state: WizardState) -> Command[Any]:
    """Save when confirmed (or on to drafting, when that is what was said), take a change typed here ("change the
    house style to: …"), otherwise ask what to change."""
    value = state["intent"].get("value")
    if isinstance(value, dict):
        slot, text = str(value.get("slot")), str(value.get("text", "")).strip()
        spec = spec_of(state)
        if slot == "name" and sense.control_word(text):
            say(f"“{text}” cannot be the project's name. Say “change the name to: …” with the name you want.")
            return go(Node.listen)
        cleared = spec.model_copy(update={slot: [] if isinstance(getattr(spec, slot), list) else ""})
        changed = apply_answer(cleared, slot, text)
        say(f"Changed the {EDITABLE.get(slot, slot).lower()} to what you wrote.")
        return go(Node.confirm_spec, {"spec": changed.model_dump()})
    return go(Node.save_project if value in ("confirm", "draft") else Node.choose_edit)


@routes(asks=(Node.on_edit,))
def choose_edit(state: WizardState) -> Command[Any]:
    """Ask which part to change; that slot is asked again next."""
    spec = spec_of(state)
    options = {k: v for k, v in EDITABLE.items() if k not in ("labels", "entity_types") or getattr(spec, k)}
    return ask(state, "What would you like to change?", then=Node.on_edit, stage="interview", choices=options)


@routes(Node.ask_slot)
def on_edit(state: WizardState) -> Command[Any]:
    """Ask the chosen slot again."""
    return go(Node.ask_slot, {"force_slot": str(state["intent"].get("value"))})


@routes(Node.draft_batch, Node.choose_data, asks=(Node.on_name_taken,))
async def save_project(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Save the confirmed spec; a name another conversation uses is never overwritten: continue it or rename."""
    spec = spec_of(state)
    thread = runtime.context.thread_id or None
    exists, owner = await asyncio.to_thread(project_owner, spec.name)
    if exists and owner != thread and interview_of(state).get("spec_path") != _path_of(spec.name):
        return ask(state, f"A project called **{spec.name}** already exists on this machine, with its own data and "
                          "runs. Continue that project, or give this one a new name?", then=Node.on_name_taken,
                   stage="interview", choices={"continue": f"Continue {spec.name}", "rename": "Give a new name"})
    try:
        path = await asyncio.to_thread(save_spec, spec, thread)
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return go(Node.choose_data, {"spec_path": ""})
    title(spec.name)
    say(f"Saved your project **{spec.name}** to `{path}`. You can edit that file any time.")
    drafting = state["intent"].get("value") == "draft" and state.get("llm_ok")
    return go(Node.draft_batch if drafting else Node.choose_data, {"spec_path": str(path), "draft_focus": {}})


def _path_of(name: str) -> str:
    from tools.project import project_dir

    return str(project_dir(slugify(name)) / "spec.json")


@routes(Node.ask_slot, Node.choose_data)
def on_name_taken(state: WizardState) -> Command[Any]:
    """Continue the existing project as it is saved, or ask for a new name."""
    if state["intent"].get("value") == "continue":
        from assistant.stages.dataset import current_dataset

        spec = load_spec(spec_of(state).name)
        title(spec.name)
        say(f"Continuing **{spec.name}** as it was saved.")
        # its dataset comes with it: offered to keep, never uploaded again into duplicates
        return go(Node.choose_data, {"spec": spec.model_dump(), "spec_path": _path_of(spec.name),
                                     "data_path": current_dataset(spec.name) or dataset_of(state).get("data_path", "")})
    return go(Node.ask_slot, {"force_slot": "name"})


@routes(asks=(Node.on_start_over,))
def confirm_start_over(state: WizardState) -> Command[Any]:
    """Start a new model in this conversation (what was saved stays saved)."""
    return ask(state, "Start a new model from the beginning? Your saved projects, datasets, runs and models stay "
                      "where they are.", then=Node.on_start_over, stage="interview",
               choices={"yes": "Start a new model", "no": "Stay here"})


@routes(Node.ask_slot, Node.choose_next, Node.choose_data)
def on_start_over(state: WizardState) -> Command[Any]:
    """Reset the conversation's journey, or return to the question before."""
    if state["intent"].get("value") != "yes":
        return go(Node.choose_next if train_of(state).get("train_outcome")
                  else Node.choose_data if interview_of(state).get("spec_path") else Node.ask_slot)
    say("A fresh start — tell me about the new model.")
    return go(Node.ask_slot, {"spec": ProjectSpec().model_dump(), "asked_slots": [], "attempts": {}, "force_slot": "",
                              "spec_path": "", "data_path": "", "data_ok": False, "run_dir": "", "train_outcome": {},
                              "evaluated": False, "exported_name": "", "checked_export": False, "train_sets": {},
                              "left_open": [],
                              "train_model": "", "preset": "", "drafts": [], "draft_index": 0})
