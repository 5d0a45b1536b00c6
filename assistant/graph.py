"""The wizard as a LangGraph: onboard → interview → confirm → dataset → check → configure → train."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import BaseModel, ConfigDict

from assistant import prompts, stages
from assistant.context import WizardContext
from assistant.stages import say, stage
from assistant.state import WizardState
from tools import doctor
from tools.errors import MTWError
from tools.project import MAX_FIELD_CHARS, ProjectSpec, apply_answer, describe, next_slot, save_spec

STAGES = ["Check your machine", "Describe your model", "Build the dataset", "Check the dataset",
          "Configure training", "Train", "Evaluate", "Deploy to Ollama"]
GUIDED = ("I'll work as a guided form for now: I ask, you answer, and buttons help where there is a choice. "
          "Understanding free-text answers, drafting examples and the judge need the assistant model in Ollama.")
EDITABLE = {"purpose": "What it does", "task_type": "Kind", "audience": "Audience", "house_style": "House style",
            "samples": "Samples", "never_do": "Never-do rules", "labels": "Labels", "entity_types": "Entities"}


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


async def check_environment(state: WizardState, runtime: Runtime[WizardContext]) -> dict[str, Any]:
    """Greet, check the machine and the assistant model, and pick guided mode when Ollama is missing."""
    stage(0)
    say("Hi! I'm the **Model Training Wizard**. I'll help you fine-tune a model on your own examples and run it "
         "in your Ollama — step by step, in plain words. First, a quick look at this machine.")
    settings = runtime.context.settings
    ok, note, missing = await runtime.context.llm.status()
    checks = await asyncio.to_thread(
        lambda: [doctor.check_workspace(settings), doctor.check_memory(), doctor.check_disk(settings),
                 *doctor.check_accelerator()])
    get_stream_writer()({"checks": [c.as_dict() for c in checks]})
    if ok:
        say(f"The assistant model **{runtime.context.llm.model}** is ready in Ollama.")
    elif not missing:
        say(f"{note}\n\n{GUIDED}")
    return {"llm_ok": ok, "llm_note": note, "model_missing": missing,
            "spec": state.get("spec") or ProjectSpec().model_dump(),
            "asked_slots": state.get("asked_slots", []), "attempts": state.get("attempts", {})}


def route_after_check(state: WizardState) -> Literal["offer_download", "ask_question"]:
    """Offer to download the assistant model when Ollama runs but lacks it."""
    return "offer_download" if state.get("model_missing") else "ask_question"


async def offer_download(state: WizardState, runtime: Runtime[WizardContext]) -> dict[str, Any]:
    """Ask before a multi-GB download; pull with progress, or go on as a guided form."""
    model = runtime.context.llm.model
    choice = interrupt({"kind": "question", "slot": "_download", "optional": False,
                        "text": f"Ollama runs, but the assistant model **{model}** is not downloaded yet. "
                                "Download it now? It is a few GB and takes a few minutes.",
                        "choices": {"pull": f"Download {model}", "skip": "Continue without it"}})
    if str(choice).strip().lower() not in {"pull", f"download {model}".lower(), "yes", "y"}:
        say(GUIDED)
        return {"model_missing": False}
    writer = get_stream_writer()
    try:
        await runtime.context.llm.pull(
            lambda status, done, total: writer({"progress": {"status": status, "completed": done, "total": total}}))
    except MTWError as exc:
        say(f"The download did not finish: {exc.message} {exc.fix}\n\n{GUIDED}")
        return {"model_missing": False}
    ok, note, _ = await runtime.context.llm.status()
    say(f"**{model}** is downloaded and ready." if ok else f"{note}\n\n{GUIDED}")
    return {"llm_ok": ok, "llm_note": note, "model_missing": False}


def ask_question(state: WizardState) -> dict[str, Any]:
    """Ask the next open slot (or the one the user chose to change); the answer comes back on resume."""
    stage(1)
    spec = ProjectSpec(**state["spec"])
    slot = state.get("force_slot") or next_slot(spec, state.get("asked_slots", [])) or "purpose"
    q = prompts.questions()[slot]
    tries = state.get("attempts", {}).get(slot, 0)
    answer = interrupt({"kind": "question", "slot": slot, "text": q["follow_up"] if tries else q["question"],
                        "choices": q.get("choices", {}), "optional": bool(q.get("optional"))})
    update: dict[str, Any] = {"asked": slot, "answer": str(answer or ""), "force_slot": "",
                              "asked_slots": [*state.get("asked_slots", []), slot],
                              "attempts": {**state.get("attempts", {}), slot: tries + 1}}
    if state.get("force_slot"):
        empty: Any = [] if isinstance(getattr(spec, slot), list) else None if slot == "task_type" else ""
        update["spec"] = spec.model_copy(update={slot: empty}).model_dump()
    return update


async def understand_answer(state: WizardState, runtime: Runtime[WizardContext]) -> dict[str, Any]:
    """Fill the spec from the answer: through the LLM's structured output, or as a guided form."""
    slot, answer = state["asked"], state.get("answer", "").strip()
    spec = ProjectSpec(**state["spec"])
    if not answer:
        say("That message was empty — no problem, here is the question again.")
        return {}
    if len(answer) > MAX_FIELD_CHARS:
        say(f"That was a long message ({len(answer):,} characters); I kept the first {MAX_FIELD_CHARS:,} for "
             "your project. Long samples are better added later as dataset examples.")
    llm_ok = state.get("llm_ok", False)
    if llm_ok and slot != "samples":
        prompt = (f"Spec so far: {json.dumps(spec.model_dump(), ensure_ascii=False)}\n"
                  f"Question (about '{slot}'): {prompts.questions()[slot]['question']}\n"
                  f"Answer: {answer[:MAX_FIELD_CHARS]}\nReturn the fields this answer fills.")
        try:
            upd = await runtime.context.llm.astructured(prompt, SpecUpdate, system=prompts.text("interview_system.md"))
            filled = {k: v for k, v in upd.model_dump().items() if v}
            spec = ProjectSpec(**{**spec.model_dump(), **filled})
        except MTWError as exc:
            llm_ok = False
            say(f"{exc.message} {exc.fix}\n\n{GUIDED}")
    tries = state.get("attempts", {}).get(slot, 0)
    if not getattr(spec, slot) and (not llm_ok or tries >= 2 or slot == "samples"):
        spec = apply_answer(spec, slot, answer)
    if slot == "task_type" and not spec.task_type:
        say("I could not tell which kind you meant; please click one of the buttons.")
    return {"spec": spec.model_dump(), "llm_ok": llm_ok}


def route_after_understand(state: WizardState) -> Literal["ask_question", "confirm_spec"]:
    """Keep interviewing while a slot is open; then show the spec back."""
    spec = ProjectSpec(**state["spec"])
    return "confirm_spec" if next_slot(spec, state.get("asked_slots", [])) is None else "ask_question"


def confirm_spec(state: WizardState) -> dict[str, Any]:
    """Show the spec and ask the user to confirm or change something."""
    spec = ProjectSpec(**state["spec"])
    if not spec.name:
        spec = spec.model_copy(update={"name": " ".join(spec.purpose.split()[:6]).strip(".,;:") or "My model"})
    choice = interrupt({"kind": "confirm", "text": "Here is your project. Is this right?", "spec_md": describe(spec),
                        "choices": {"confirm": "Looks right", "edit": "Change something"}})
    confirmed = str(choice).strip().lower() in {"confirm", "looks right", "yes", "y", "ok", "correct"}
    return {"spec": spec.model_dump(), "confirmed": confirmed}


def route_after_confirm(state: WizardState) -> Literal["save_project", "choose_edit"]:
    """Save when confirmed, otherwise ask what to change."""
    return "save_project" if state.get("confirmed") else "choose_edit"


def choose_edit(state: WizardState) -> dict[str, Any]:
    """Ask which part to change; that slot is asked again next."""
    spec = ProjectSpec(**state["spec"])
    options = {k: v for k, v in EDITABLE.items()
               if k not in ("labels", "entity_types") or getattr(spec, k)}
    choice = str(interrupt({"kind": "question", "slot": "_edit", "text": "What would you like to change?",
                            "choices": options, "optional": False})).strip()
    slot = choice if choice in options else next((k for k, v in options.items() if v.lower() == choice.lower()), "")
    return {"force_slot": slot}


def route_after_edit(state: WizardState) -> Literal["ask_question", "choose_edit"]:
    """Ask the chosen slot again; an unknown choice asks again."""
    return "ask_question" if state.get("force_slot") else "choose_edit"


async def save_project(state: WizardState, runtime: Runtime[WizardContext]) -> dict[str, Any]:
    """Save the confirmed spec in MTW_HOME; a failed save says why and the conversation goes on."""
    spec = ProjectSpec(**state["spec"])
    try:
        path = await asyncio.to_thread(save_spec, spec, runtime.context.thread_id or None)
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return {"spec_path": ""}
    say(f"Saved your project **{spec.name}** to `{path}`. You can edit that file any time.")
    return {"spec_path": str(path)}


builder = StateGraph(WizardState, context_schema=WizardContext)
builder.add_node(check_environment)
builder.add_node(offer_download)
builder.add_node(ask_question)
builder.add_node(understand_answer)
builder.add_node(confirm_spec)
builder.add_node(choose_edit)
builder.add_node(save_project)
for node in (stages.choose_data, stages.receive_file, stages.use_sample, stages.draft_batch, stages.review_draft,
             stages.after_drafts, stages.check_data, stages.decide_after_check, stages.fix_data,
             stages.configure_training, stages.offer_base_download, stages.confirm_training, stages.start_training,
             stages.watch_training, stages.after_training, stages.choose_next, stages.evaluate_model,
             stages.export_model, stages.score_answer, stages.report_agreement):
    builder.add_node(node)
builder.add_edge(START, "check_environment")
builder.add_conditional_edges("check_environment", route_after_check)
builder.add_edge("offer_download", "ask_question")
builder.add_edge("ask_question", "understand_answer")
builder.add_conditional_edges("understand_answer", route_after_understand)
builder.add_conditional_edges("confirm_spec", route_after_confirm)
builder.add_conditional_edges("choose_edit", route_after_edit)
builder.add_edge("save_project", "choose_data")
builder.add_conditional_edges("choose_data", stages.route_after_choose_data)
builder.add_conditional_edges("receive_file", stages.route_after_receive)
builder.add_edge("use_sample", "check_data")
builder.add_conditional_edges("draft_batch", stages.route_after_review)
builder.add_conditional_edges("review_draft", stages.route_after_review)
builder.add_conditional_edges("after_drafts", stages.route_after_drafts)
builder.add_edge("check_data", "decide_after_check")
builder.add_conditional_edges("decide_after_check", stages.route_after_decide)
builder.add_edge("fix_data", "check_data")
builder.add_conditional_edges("configure_training", stages.route_after_configure)
builder.add_conditional_edges("offer_base_download", stages.route_after_base_offer)
builder.add_conditional_edges("confirm_training", stages.route_after_confirm_training)
builder.add_edge("start_training", "watch_training")
builder.add_edge("watch_training", "after_training")
builder.add_conditional_edges("after_training", stages.route_after_training)
builder.add_conditional_edges("choose_next", stages.route_after_next)
builder.add_edge("evaluate_model", "choose_next")
builder.add_conditional_edges("score_answer", stages.route_after_score)
builder.add_edge("report_agreement", "choose_next")
builder.add_conditional_edges("export_model", stages.route_after_export)
