"""Try it: the user's own prompts answered by the tuned model (and the base, on request), streamed; ratings kept."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Command

from assistant.context import WizardContext
from assistant.conversation import after_training, ask, go
from assistant.nodes import TRY_BACK, Node, routes
from assistant.stages.prefer import DONE, counted, keep_pick, keep_rating, pick_answer
from assistant.state import WizardState, deploy_of, playground_of, train_of
from assistant.ui_events import QUICK_SKIPS, progress_event, say, stage
from tools.errors import MTWError

RATINGS = {"up": "👍", "down": "👎", **{str(n): "★" * n for n in range(1, 6)}}
"""Thumbs or 1–5 stars (tools/evaluate/playground.rate takes either)."""
SHOWN_EVERY = 4
"""Pieces of text between two updates of the streamed answer."""


def _source(state: WizardState) -> str:
    """Where answers come from: an Ollama model (after export, or the quick path) or the run's adapter here."""
    return str(playground_of(state).get("try_ollama") or deploy_of(state).get("exported_name") or "")


def _stage(state: WizardState) -> tuple[str, list[str], bool]:
    """The Tasks panel while trying: evaluation after training (deployment done once the model is in Ollama); the
    quick path's styled model skipped training and is deployed."""
    if train_of(state).get("run_dir"):
        where, finished = after_training(state)
        return where, [], finished
    return "deploy", list(QUICK_SKIPS), bool(deploy_of(state).get("quick_made"))


@routes(asks=(Node.on_try,))
def try_model(state: WizardState) -> Command[Any]:
    """Ask for a prompt to try."""
    where_now, skipped, finished = _stage(state)
    stage(where_now, skipped=tuple(skipped), finished=finished)
    ollama = _source(state)
    where = f"**{ollama}** in your Ollama" if ollama else "your tuned model (on this machine, before export)"
    return ask(state, f"Type a prompt for {where} — what you would really ask it.", then=Node.on_try, stage=where_now,
               skipped=skipped, finished=finished, free_text=True, verbatim=True, choices={"done": "Done trying"},
               update={"try_last": {}})


def _local(runtime: Runtime[WizardContext], run_dir: str) -> Any:
    """The run's tuned model, loaded once per conversation."""
    from tools.evaluate.playground import LocalModel

    cached = runtime.context.extra.get("try_local")
    if cached is None or str(cached.run_dir) != run_dir:
        cached = LocalModel(run_dir)
        runtime.context.extra["try_local"] = cached
    return cached


def _base_tag(run_dir: str) -> str:
    """The base model's Ollama tag, when the run's base has one."""
    from tools.export.pipeline import base_entry
    from tools.train.config import load_run_config

    entry = base_entry(load_run_config(run_dir).model)
    return entry.ollama_tag if entry and entry.ollama_tag else ""


async def _stream(pieces: Iterator[str], key: str, title: str) -> str:
    """Run a blocking generator in a thread and show the answer as it grows (one progress line, updated)."""
    writer, loop = get_stream_writer(), asyncio.get_running_loop()

    def run() -> str:
        text = ""
        for n, piece in enumerate(pieces, start=1):
            text += piece
            if n % SHOWN_EVERY == 0:
                loop.call_soon_threadsafe(writer, progress_event(key, title, text))
        return text

    text = await asyncio.to_thread(run)
    writer(progress_event(key, title, text or "(empty answer)"))
    return text


@routes(*TRY_BACK, Node.try_model, Node.listen, Node.ask_wanted, asks=(Node.on_try,))
async def on_try(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """A new prompt (answered by the tuned model), 'also show the base', a rating, or done."""
    from tools.evaluate.playground import rate, stream_ollama

    value = str(state["intent"].get("value") or "").strip()
    last = dict(playground_of(state).get("try_last") or {})
    run_dir, ollama = str(train_of(state).get("run_dir") or ""), _source(state)
    if value == "done" or value.lower().strip(" .!") in DONE:
        return go(Node(playground_of(state).get("try_back") or Node.choose_next),
                  {"try_last": {}, "try_ollama": "", "try_back": ""})
    pair = dict(playground_of(state).get("try_pair") or {})
    if value in RATINGS and last:
        kept = await asyncio.to_thread(rate, run_dir, last["prompt"], last["answer"], value, which=last["which"],
                                       source=last["source"])
        judged = await asyncio.to_thread(keep_rating, state, last, value)
        say(f"Rated {RATINGS[value]} — kept with the run ({kept.score}/5)"
            + (f" and as a judgement ({await asyncio.to_thread(counted, state)})" if judged else "")
            + "; round 2 uses your ratings.")
        if judged and value == "down":
            return go(Node.ask_wanted, {"wanted_for": {**last, "id": judged}, "try_pair": {}})
        return go(Node.try_model, {"try_pair": {}})
    pick = value if value in ("first", "second") else pick_answer(value) if pair else ""
    if pair and pick:
        if await asyncio.to_thread(keep_pick, state, pair["first"], pair["second"], pick):
            say(f"Kept: the {pick if pick in ('first', 'second') else pick + ' model' + chr(39) + 's'} answer over "
                f"the other ({await asyncio.to_thread(counted, state)}); “Improve with my ratings” trains on "
                "them.")
        else:
            say("Noted: neither is better, so there is nothing to learn from this pair.")
        return go(Node.try_model, {"try_pair": {}})
    sample = 0
    if value == "again":
        which, prompt, sample = "tuned", last.get("prompt", ""), int(last.get("sample", 0)) + 1
    elif value == "base":
        which, prompt = "base", last.get("prompt", "")
    else:
        which, prompt = "tuned", value
    if not prompt:
        say("Type a prompt first; then I can show the base model's answer to it too.")
        return go(Node.listen)
    try:
        if which == "base" and run_dir:
            tag = "" if not ollama else await asyncio.to_thread(_base_tag, run_dir)
            if tag:
                pieces, source = stream_ollama(tag, prompt), f"ollama:{tag}"
            else:
                model = await asyncio.to_thread(_local, runtime, run_dir)
                pieces, source = model.stream(prompt, which="base"), "local"
        elif ollama:
            pieces, source = stream_ollama(ollama, prompt, sample=sample), f"ollama:{ollama}"
        elif run_dir:
            model = await asyncio.to_thread(_local, runtime, run_dir)
            pieces, source = model.stream(prompt, sample=sample), "local"
        else:
            say("There is no model to try yet: train one first (or make the styled model).")
            return go(Node(playground_of(state).get("try_back") or Node.choose_data))
        title = "Base model" if which == "base" else f"**{ollama}**" if ollama and not run_dir else "Tuned model"
        if sample:
            title = f"{title}, another answer"
        answer = await _stream(pieces, f"try-{state.get('qid', 0)}-{which}-{sample}", title)
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return go(Node.listen)
    shown = {"prompt": prompt, "answer": answer, "which": which, "source": source, "sample": sample}
    # a second answer to the same prompt (the base's, or another of the tuned model's): "which is better?"
    second = value in ("base", "again") and last.get("prompt") == prompt and answer.strip() \
        and str(last.get("answer", "")).strip() not in ("", answer.strip())
    choices: dict[str, str] = {}
    if second:
        choices.update({"first": "The first is better", "second": "The second is better"})
    if run_dir:
        choices.update(RATINGS)
        if which == "tuned":
            choices["base"] = "Also show the base"
            choices["again"] = "Another answer"
    choices["done"] = "Done trying"
    next_step = ("Rate it (👍 / 👎 or 1–5 stars), type another prompt, or say you are done." if run_dir
                 else "Type another prompt, or say you are done.")
    if second:
        next_step = ("Which is better, the first answer or the second? (Or rate this one, type another prompt, or "
                     "say you are done.)")
    # the answer stays in the chat as it was streamed: the question only says what can come next
    where_now, skipped, finished = _stage(state)
    return ask(state, next_step, then=Node.on_try, stage=where_now, skipped=skipped, finished=finished, free_text=True,
               verbatim=True, choices=choices,
               update={"try_last": shown, "try_pair": {"first": last, "second": shown} if second else {}})
