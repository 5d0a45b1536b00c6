"""The conversation loop every question goes through: ask, listen, understand, then answer, explain or steer.

A stage node that needs the user returns `ask(...)`: the question goes into the state and the graph moves to
`listen`, the only node that interrupts. `understand` reads the reply (a click, a typed message, a file, a
training outcome or the end of a run) and `route_intent` sends it on: an answer to the node named in the question,
a question to `explain` (then the same question again), a setting to `change_setting`, navigation to the stage asked
for.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import BaseModel

from assistant import routing
from assistant.context import WizardContext
from assistant.nodes import Node, check_route, routes
from assistant.routing import Intent
from assistant.state import WizardState, dataset_of, deploy_of, evaluate_of, filed, interview_of, spec_of, train_of
from assistant.ui_events import STAGES, Question, say, thinking
from tools.errors import LLMCancelled, LLMDropped, LLMServerError, ModelNotPulled, MTWError, OllamaUnavailable

ENTRY: dict[str, Node] = {
    "interview": Node.confirm_spec, "dataset": Node.choose_data, "plan": Node.configure_training,
    "evaluate": Node.evaluate_model, "deploy": Node.export_model, "models": Node.list_models,
    "start_over": Node.confirm_start_over,
}
"""Where navigation lands, by target."""

STEER: dict[str, Node] = {"question": Node.explain, "status": Node.where_we_are, "setting": Node.change_setting,
                          "navigate": Node.navigate, "stale": Node.note_stale, "ended": Node.read_outcome}
"""Where a reply that is not an answer goes, by the kind of intent (anything else: `not_understood`)."""


def after_training(state: WizardState) -> tuple[str, bool]:
    """Where the Tasks panel stands once a model is trained: at Evaluate, or, with the model in Ollama, at Deploy with
    every stage of the round finished. Returns the stage and whether it is finished."""
    return ("deploy", True) if deploy_of(state).get("exported_name") else ("evaluate", False)


def not_done(state: WizardState) -> list[str]:
    """Stages of this round the Tasks panel must not tick: Evaluate, until a comparison has finished (a failed or
    skipped one is not done)."""
    return [] if evaluate_of(state).get("evaluated") or not train_of(state).get("run_dir") else ["evaluate"]


def ask(state: WizardState, text: str, *, then: Node, stage: str, choices: dict[str, str] | None = None,
        kind: str = "question", free_text: bool = False, optional: bool = False, slot: str = "",
        effects: tuple[str, ...] = (), update: dict[str, Any] | None = None, **extra: Any) -> Command[Any]:
    """Ask the user something; the answer goes to the node `then` (declared in the asking node's `@routes`).

    `update` may name stage fields flat (`{"run_dir": ...}`) or by sub-state: `filed` files them under their stage."""
    check_route(then)
    qid = state.get("qid", 0) + 1
    if stage == "deploy" and "skipped" not in extra:
        extra["skipped"] = not_done(state)
    question: dict[str, Any] = {"id": qid, "kind": kind, "text": text, "choices": dict(choices or {}),
                                "free_text": free_text, "optional": optional, "then": str(then), "stage": stage,
                                "slot": slot, "effects": list(effects), **extra}
    return Command(update=filed({**(update or {}), "question": question, "qid": qid, "suggested": ""}),
                   goto=str(Node.listen))


def go(node: Node, update: dict[str, Any] | None = None) -> Command[Any]:
    """Move on to another node (one the running node's `@routes` declares), with `update` filed as in `ask`."""
    check_route(node)
    return Command(update=filed(update or {}), goto=str(node))


def listen(state: WizardState) -> dict[str, Any]:
    """Wait for the user's reply to the open question (the only interrupt in the graph: no side effects here)."""
    reply = interrupt(state["question"])
    return {"reply": reply}


async def understand(state: WizardState, runtime: Runtime[WizardContext]) -> dict[str, Any]:
    """Decide what the reply means at the open question (the routing node at every interrupt)."""
    question: Question = state["question"]  # type: ignore[assignment]
    reply = state.get("reply")
    if isinstance(reply, dict) and "qid" in reply:
        intent = routing.from_click(reply, question)
    elif isinstance(reply, dict) and reply.get("outcome"):
        intent = {"kind": "outcome", "value": reply["outcome"], "by": "click"}
    elif isinstance(reply, dict) and reply.get("ended"):
        intent = {"kind": "ended", "value": str(reply["ended"]), "by": "click"}
    elif isinstance(reply, dict) and reply.get("settings"):
        intent = {"kind": "setting", "value": dict(reply["settings"]), "text": "", "by": "click"}
    elif isinstance(reply, dict) and "path" in reply:
        intent = {"kind": "file", "value": reply, "text": str(reply.get("name", "")), "by": "click"}
    else:
        text = str(reply or "")
        intent = routing.parse(text, question) or await _ask_model(state, runtime, text, question)
        suggested = state.get("suggested")
        if suggested and text.strip().lower().strip(" .!") in routing.YES:
            intent = {"kind": "answer", "value": suggested, "text": text, "by": "parser"}
    return {"intent": intent}


async def _ask_model(state: WizardState, runtime: Runtime[WizardContext], text: str, question: Question) -> Intent:
    """One structured-output call onto the closed set; without the model, 'unclear' for this turn only."""
    ip = await call_model(state, runtime, routing.interpretation_prompt(text, question), routing.Interpretation)
    if ip is None:
        return {"kind": "unclear", "text": text, "by": "parser"}
    return routing.from_interpretation(ip, text, question)


async def call_model(state: WizardState, runtime: Runtime[WizardContext], prompt: str, schema: type[BaseModel],
                     system: str | None = None, *, fallback: str = "I'll go on without it for this answer.",
                     note: str = "Thinking about your message…") -> Any:
    """Ask the assistant model for a typed answer, bounded in time; None (and one plain sentence) when it fails.

    A failure falls back to the guided form for this turn only: the next turn asks the model again. A dropped
    connection or a server error is tried once more; a slow, looping or wrong-shaped answer is not (the model layer
    re-asks once for a wrong shape itself).
    """
    if not state.get("llm_ok"):
        return None
    limit = runtime.context.time_limit_s
    thinking(True, f"{note} (■ stops the wait; then say what you want instead)")
    try:
        for attempt in range(2):
            try:
                return await asyncio.wait_for(runtime.context.llm.astructured(prompt, schema, system=system,
                                                                              time_limit_s=limit), limit + 5)
            except (LLMDropped, LLMServerError):
                if attempt:
                    raise  # a hiccup of the connection is worth one more try; a second one is not
    except TimeoutError:
        say(f"The assistant model took longer than {limit:.0f} s, so I stopped waiting. {fallback}")
    except LLMCancelled:
        pass
    except MTWError as exc:
        away = isinstance(exc, OllamaUnavailable | ModelNotPulled)
        say(f"{exc.message} {fallback} " + (exc.fix if away else "I'll ask it again next time."))
    finally:
        thinking(False)
    return None


def route_intent(state: WizardState) -> str:
    """Send the understood reply on: to the question's handler, or to explain / steer / ask again."""
    intent = state.get("intent") or {}
    kind = intent.get("kind")
    question = state.get("question") or {}
    if kind == "outcome":
        return Node.after_training
    if kind == "file" and question.get("kind") != "file":
        return Node.misplaced_file
    if kind in ("answer", "file"):
        guessed = intent.get("by") == "model" or intent.get("partial")
        if kind == "answer" and guessed and intent.get("value") in question.get("effects", []):
            return Node.confirm_suggestion
        return str(question.get("then"))
    return STEER.get(str(kind), Node.not_understood)


@routes(Node.listen)
async def explain(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Answer a question from the troubleshooting guide, then ask the open question again.

    The assistant model phrases the answer from the guide's entries when it can; a slow or senseless answer gives
    way to the guide's own lines on the question, never to a reply about something else."""
    from tools.troubleshoot.answer import cited, explain_question, relevant_lines

    text = (state.get("intent") or {}).get("text", "")
    thinking(True, "Looking that up in the troubleshooting guide… (■ stops the wait; then say what you want instead)")
    try:
        found = await asyncio.to_thread(explain_question, text, model=runtime.context.llm.model,
                                        ask=bool(state.get("llm_ok")),
                                        cancel=runtime.context.llm.cancel,
                                        time_limit_s=runtime.context.time_limit_s)
    finally:
        thinking(False)
    if found.answer:
        sources = ", ".join(f"*{e.title}*" for e in cited(found.answer, found.entries))
        out = f"{found.answer}\n\n_From the troubleshooting guide: {sources}_"
    elif found.entries:
        best = found.entries[0]
        out = f"**{best.title}**\n\n{relevant_lines(best, text)}" + (f"\n\n_{found.note}_" if found.note else "")
    else:
        out = found.note or "I have nothing in the troubleshooting guide on that."
    say(out + "\n\nNow, back to where we were:")
    return go(Node.listen)


@routes(Node.listen)
def where_we_are(state: WizardState) -> Command[Any]:
    """Say where the journey stands and what can be said here, then ask again."""

    spec = spec_of(state)
    question = state.get("question") or {}
    done = []
    if spec.name:
        done.append(f"project **{spec.name}**")
    if dataset_of(state).get("data_path"):
        done.append(f"dataset `{dataset_of(state)['data_path']}`")
    if train_of(state).get("run_dir"):
        status = (train_of(state).get("train_outcome") or {}).get("status", "started")
        done.append(f"run `{train_of(state)['run_dir']}` ({status})")
    if deploy_of(state).get("exported_name"):
        done.append(f"model **{deploy_of(state)['exported_name']}** in Ollama")
    where = STAGES.get(str(question.get("stage", "")), "the start")
    say(f"We are at **{where}**." + (f" So far: {', '.join(done)}." if done else "")
        + "\n\nYou can click a button or type: an answer, a question (\"what is an epoch?\"), a setting "
          "(\"use 1 epoch\", \"pick qwen2.5-1.5b\"), or where to go (\"back to the dataset\", \"start over\").")
    return go(Node.listen)


@routes(Node.listen)
def note_stale(state: WizardState) -> Command[Any]:
    """A click on an older question's button: ignored, with a short note; the open question is asked again."""
    say("That button belonged to an earlier question, so I left it alone. Here is the current one:")
    return go(Node.listen)


@routes(Node.listen)
def not_understood(state: WizardState) -> Command[Any]:
    """Neither the parser nor the assistant model could place the message: say what can be said here."""
    question = state.get("question") or {}
    if not str((state.get("intent") or {}).get("text", "")).strip():
        say("That message was empty — no problem, here is the question again.")
        return go(Node.listen)
    labels = [f"**{v}**" for v in (question.get("choices") or {}).values()]
    hint = f"Pick one of: {', '.join(labels)} (click, or type it)." if labels else "Try saying it another way."
    if question.get("kind") == "file":
        hint = "Attach your file with the paperclip (or drop it on the chat)." + (f" Or: {', '.join(labels)}."
                                                                                 if labels else "")
    say(f"I did not get that. {hint} You can also ask a question, or say \"where are we?\".")
    return go(Node.listen)


@routes(Node.listen)
def confirm_suggestion(state: WizardState) -> Command[Any]:
    """Something that starts work was only said in other words (or in part): show it and wait for a click or a
    clear yes."""
    question = state.get("question") or {}
    key = str((state.get("intent") or {}).get("value"))
    label = (question.get("choices") or {}).get(key, key)
    say(f"Did you mean **{label}**? Click it, or say yes.")
    return go(Node.listen, {"suggested": key})


@routes(*ENTRY.values(), Node.choose_next, Node.listen)
def navigate(state: WizardState) -> Command[Any]:
    """Go to the stage the user named, when it can be reached from here."""
    target = str((state.get("intent") or {}).get("value"))
    question = state.get("question") or {}
    if question.get("kind") == "training":
        say("Training is running. Stop it first (the **Stop** button, or say \"stop\"), or wait for it to finish.")
        return go(Node.listen)
    if target == "back":
        if question.get("stage") == "deploy":
            # back from naming or sizing an export is the menu after the run, never a new evaluation
            return go(Node.choose_next, {"export_name": "", "export_quant": ""})
        target = {"dataset": "interview", "check": "dataset", "configure": "dataset", "train": "plan",
                  "evaluate": "plan"}.get(str(question.get("stage")), "")
        if not target:
            say("There is no earlier step to go back to from here.")
            return go(Node.listen)
    if target == "interview" and question.get("kind") == "confirm":
        say("We are at your project's description. Click **Looks right** to go on, or say what to change "
            "(e.g. “change the audience to: executives”).")
        return go(Node.listen)
    if target == "evaluate" and evaluate_of(state).get("evaluated"):
        say("The comparison with the base model is done already — it is above. Here is what you can do next:")
        return go(Node.choose_next)
    if target == "plan" and not dataset_of(state).get("data_path"):
        say("The training plan needs a dataset first — let's build it.")
        target = "dataset"
    if target in ("evaluate", "deploy") and (train_of(state).get("train_outcome") or {}).get("status") != "done":
        say("That needs a finished training run first.")
        return go(Node.listen)
    if target in ("dataset", "plan") and not interview_of(state).get("spec_path"):
        say("Let's finish describing your model first.")
        return go(Node.listen)
    return go(ENTRY[target])


@routes(Node.configure_training, Node.listen)
def change_setting(state: WizardState) -> Command[Any]:
    """A setting said in words: checked with the config's own rules, then the plan is made again."""
    from tools.train.setting import apply_settings

    wanted: dict[str, Any] = dict((state.get("intent") or {}).get("value") or {})
    question = state.get("question") or {}
    if question.get("kind") == "training":
        say("This run keeps its settings. Stop it (say \"stop\") and I'll restart it with the change.")
        return go(Node.listen)
    try:
        sets, model, preset, said = apply_settings(wanted, sets=dict(train_of(state).get("train_sets") or {}),
                                                   model=train_of(state).get("train_model", ""),
                                                   preset=train_of(state).get("preset") or "")
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}".strip())
        return go(Node.listen)
    update = {"train_sets": sets, "train_model": model, "preset": preset, "plan_changed": said}
    if not dataset_of(state).get("data_path") or not interview_of(state).get("spec_path"):
        say(f"Noted: {said}. I'll use it when we get to training.")
        return go(Node.listen, update)
    return go(Node.configure_training, update)
