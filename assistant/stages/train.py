"""Configure and train: the plan (changeable by talking), the base download, the background run, and what follows
every way a run can end (done, stopped, failed)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.types import Command

from assistant.conversation import ask, go
from assistant.nodes import Node, routes
from assistant.state import WizardState, dataset_of, playground_of, spec_of, train_of
from assistant.ui_events import progress_event, say, stage
from tools.errors import MTWError, UsageError
from tools.project import ProjectSpec, project_dir, slugify

TRY_STEPS = 20
"""Optimizer steps of a tiny-random run started from the chat (it only demonstrates the workflow)."""
TRY_SETS = {"learning_rate": "3e-3"}
"""A random model needs a bold learning rate to show learning within those few steps."""
TINY_NOTE = ("the built-in **tiny-random** model: it trains in seconds and learns only the format of your data — "
             "good for trying the steps, not for real answers")


def run_settings(state: WizardState, model: str) -> tuple[list[str], int | None]:
    """The run's `--set` overrides and step cap: the user's changes over the quick-try defaults of tiny-random."""
    from tools.models.catalog import TINY_RANDOM

    sets = {**(TRY_SETS if model == TINY_RANDOM else {}), **(train_of(state).get("train_sets") or {})}
    steps = sets.pop("max_steps", None)
    max_steps = int(steps) if steps else (TRY_STEPS if model == TINY_RANDOM else None)
    return [f"{k}={v}" for k, v in sets.items()], max_steps


def _base_for(spec: ProjectSpec) -> tuple[str, str]:
    """The base to train and why: MiniLM for labels and entities (it ships with the app), the project's own base
    if it names one, otherwise the best base for this machine (the reason is the second item, "" if none)."""
    from tools.project import DEFAULT_BASE
    from tools.train.recommend import for_this_machine

    if spec.task_type in ("classification", "entity_extraction"):
        return "minilm", ""
    if spec.base_model != DEFAULT_BASE:
        return spec.base_model, ""
    pick = for_this_machine(spec.task_type or "generation")
    others = "".join(f"\n- {p}" for p in pick.passed_over)
    return pick.model, (f"**Base model:** {pick.model}, chosen for this machine: {pick.reason}."
                        + (f" Passed over:{others}" if others else ""))


@routes(Node.confirm_training, Node.offer_base_download, asks=(Node.on_confirm_training,))
async def configure_training(state: WizardState) -> Command[Any]:
    """Explain the plan — base model, preset, memory and time — before anything starts; say what changed."""
    from tools.download import needs_download
    from tools.models.catalog import TINY_RANDOM, load_tokenizer
    from tools.train.config import build_config
    from tools.train.estimate import estimate

    stage("configure")
    spec = spec_of(state)
    model: str = train_of(state).get("train_model") or ""
    if not model:
        model, why = await asyncio.to_thread(_base_for, spec)
        if why:
            say(why)
    if model not in ("minilm", TINY_RANDOM):
        try:
            if await asyncio.to_thread(needs_download, model):
                offer = await asyncio.to_thread(_download_offer, model)
                offer["held"] = await asyncio.to_thread(held_in_ollama, spec.task_type or "generation")
                return go(Node.offer_base_download, {"train_model": model, "base_offer": offer})
            source = await asyncio.to_thread(_weights_note, model)
            if source:
                say(source)
            await asyncio.to_thread(load_tokenizer, model)
        except MTWError as exc:
            say(f"{exc.message}\n\n**Fix:** {exc.fix}\n\nMeanwhile you can run the whole journey with {TINY_NOTE}.")
            model = TINY_RANDOM
    preset = train_of(state).get("preset") or spec.preset
    sets, steps = run_settings(state, model)
    try:
        cfg = build_config(model, dataset_of(state)["data_path"], preset=preset, sets=sets, max_steps=steps)
        est = await asyncio.to_thread(estimate, cfg)
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return ask(state, "Change a setting (say it, e.g. “batch size 2”), or go back to the dataset.",
                   then=Node.on_confirm_training, stage="configure",
                   choices={"dataset": "Back to the dataset", "reset": "Use the preset's values"},
                   update={"train_model": model})
    changed = train_of(state).get("plan_changed")
    if changed:
        say(f"**Changed:** {changed}.")
    from tools.train.recipe import recipe_note

    changes = "".join(f"\n- {c}" for c in est.changes)
    passes = _passes(est, cfg)
    steps_note = f", at most {cfg.max_steps} steps" if cfg.max_steps else ""
    repeated = passes > cfg.epochs + 0.01  # min_steps goes over a small dataset more often than `epochs` says
    epochs = f"{est.steps} steps ({passes:.3g} epochs)" if repeated else f"{cfg.epochs:g} epochs"
    sized = await asyncio.to_thread(recipe_note, cfg, passes)
    say(f"**Plan:** LoRA on **{model}** with the *{preset}* preset (learning rate {cfg.learning_rate:g}, "
        f"batch {cfg.batch_size}, {epochs}{steps_note}, context {cfg.context}).\n\n"
        + (f"{sized}\n\n" if sized else "") + f"{est.verdict}{changes}"
        "\n\n_Change anything by saying it: “use 1 epoch”, “learning rate 1e-4”, “batch size 2”, "
        "“pick qwen2.5-1.5b”, “smaller model”._")
    return go(Node.confirm_training, {"train_model": model, "plan_changed": ""})


def _passes(est: Any, cfg: Any) -> float:
    """How many times the run goes over the examples: more than `epochs` when min_steps repeats a small dataset."""
    return float(est.passes) if est.passes and not cfg.max_steps else float(cfg.epochs)


def _weights_note(model: str) -> str:
    """Where the base's weights come from when it is not a Hugging Face download: the user's Ollama, or a file."""
    from tools.models.catalog import resolve

    entry = resolve(model)
    if entry.gguf and entry.ollama_tag:
        return f"Training on the **{entry.ollama_tag}** already in your Ollama — nothing to download."
    if entry.gguf:
        return f"Training on the GGUF file `{entry.gguf}` ({entry.quantization or 'its'} weights, read for training)."
    if Path(model).expanduser().is_dir():
        return f"Training on the model folder `{model}`."
    return ""


def held_in_ollama(task: str = "generation") -> dict[str, str]:
    """The best catalog base the user's Ollama holds in a file this machine can read ({key, tag}), or {}: offered
    before any download. Bases Ollama runs are text generators; a classifier trains on MiniLM instead."""
    import httpx

    from tools import ollama_api
    from tools.models.catalog import CATALOG, TINY_RANDOM

    if task != "generation":
        return {}
    try:
        pulled = ollama_api.list_models(timeout=3.0)
    except (MTWError, httpx.HTTPError, ValueError):
        return {}  # no Ollama to ask: the download offer stands on its own
    candidates = sorted((e for e in CATALOG.values() if e.ollama_tag and e.key != TINY_RANDOM
                         and ollama_api.has_model(e.ollama_tag, pulled)), key=lambda e: -e.params_b)
    for entry in candidates:
        tag = str(entry.ollama_tag)
        if ollama_api.gguf_blob(tag) is not None:
            return {"key": entry.key, "tag": tag}
    return {}


def _download_offer(model: str) -> dict[str, Any]:
    """What fetching the base takes, asked of the Hub; estimated from the catalog when the Hub cannot be reached."""
    from tools.download import estimated_bytes, hub_cache, plan_download, repo_for

    try:
        plan = plan_download(model)
    except UsageError:
        raise  # no such repo: nothing to offer
    except MTWError as exc:
        return {"repo": repo_for(model), "bytes": estimated_bytes(model), "cache": str(hub_cache()), "gated": False,
                "problem": f"{exc.message} {exc.fix}"}
    return {"repo": plan.repo_id, "bytes": plan.missing_bytes, "cache": str(plan.cache_dir), "gated": plan.gated,
            "problem": ""}


@routes(asks=(Node.on_base_offer,))
def offer_base_download(state: WizardState) -> Command[Any]:
    """Offer to download the missing base model, or to try the steps on tiny-random."""
    from tools.download import human_bytes

    model, offer = train_of(state)["train_model"], train_of(state).get("base_offer", {})
    size = human_bytes(offer["bytes"]) if offer.get("bytes") else ""
    repo = offer.get("repo", model)
    where = f"about **{size}** of disk space in" if size else "space in"
    text = (f"The weights of **{model}** are not on this machine yet. Downloading them from Hugging Face (`{repo}`) "
            f"takes {where} `{offer.get('cache', '')}`; after that, training works offline.")
    if offer.get("gated"):
        text += (f"\n\n`{repo}` asks you to accept its licence first: open https://huggingface.co/{repo}, accept it, "
                 "then log in on this machine with `hf auth login`.")
    if offer.get("problem"):
        text += f"\n\nRight now the download would not work: {offer['problem']}"
    text += f"\n\nOr try every step first with {TINY_NOTE}."
    held = offer.get("held") or {}
    choices: dict[str, str] = {}
    if held and held.get("key") != model:
        # what the user already has comes before anything to download
        text = (f"You already have **{held['tag']}** in your Ollama: training on it needs no download.\n\n" + text)
        choices["ollama"] = f"Train on the {held['tag']} already in your Ollama — nothing to download"
    choices |= {"download": f"Download {model}" + (f" (~{size})" if size else ""),
                "tiny": "Use tiny-random to try the steps"}
    return ask(state, text, then=Node.on_base_offer, stage="configure", effects=("download",), choices=choices)


@routes(Node.configure_training, Node.offer_base_download)
async def on_base_offer(state: WizardState) -> Command[Any]:
    """Download with progress (then plan with the real model), or plan with tiny-random."""
    from tools.download import download
    from tools.models.catalog import TINY_RANDOM

    model = train_of(state)["train_model"]
    if state["intent"].get("value") == "tiny":
        return go(Node.configure_training, {"train_model": TINY_RANDOM})
    if state["intent"].get("value") == "ollama":
        held = (train_of(state).get("base_offer") or {}).get("held") or {}
        return go(Node.configure_training, {"train_model": str(held.get("key") or model)})
    writer, loop = get_stream_writer(), asyncio.get_running_loop()
    shown = [-1]

    def report(status: str, done: int, total: int) -> None:
        # called from the download thread: hand each new percent to the event loop, which owns the stream
        percent = 100 * done // total if total else 0
        if percent != shown[0]:
            shown[0] = percent
            loop.call_soon_threadsafe(writer, progress_event("download", "Downloading", f"{model} ({status})", done,
                                                             total))

    try:
        folder = await asyncio.to_thread(download, model, report)
    except MTWError as exc:
        say(f"The download did not finish: {exc.message}\n\n**Fix:** {exc.fix}")
        return go(Node.offer_base_download, {"base_offer": {**train_of(state).get("base_offer", {}), "problem": ""}})
    say(f"**{model}** is downloaded and ready (`{folder}`).")
    return go(Node.configure_training)


@routes(asks=(Node.on_confirm_training,))
def confirm_training(state: WizardState) -> Command[Any]:
    """Start only when the user says so."""
    from tools.models.catalog import TINY_RANDOM

    model = train_of(state).get("train_model", "")
    choices = {"start": "Start training"}
    if model not in (TINY_RANDOM, "minilm"):
        choices["tiny"] = "Try the workflow with tiny-random first"
    choices["dataset"] = "Back to the dataset"
    return ask(state, "Training runs in the background: you can close this page and come back.",
               then=Node.on_confirm_training, stage="configure", choices=choices, effects=("start", "tiny"))


@routes(Node.start_training, Node.choose_data, Node.configure_training)
def on_confirm_training(state: WizardState) -> Command[Any]:
    """Start, switch to tiny-random, or go back."""
    from tools.models.catalog import TINY_RANDOM

    picked = state["intent"].get("value")
    if picked == "dataset":
        return go(Node.choose_data)
    if picked == "reset":
        return go(Node.configure_training, {"train_sets": {}, "plan_changed": "back to the preset's values"})
    return go(Node.start_training, {"train_model": TINY_RANDOM} if picked == "tiny" else {})


@routes(Node.watch_training, Node.confirm_training)
def start_training(state: WizardState) -> Command[Any]:
    """Launch `mtw train` as its own process: a crash there cannot take the chat down."""
    from tools import jobs
    from tools.models.catalog import TINY_RANDOM

    spec = spec_of(state)
    run_dir = project_dir(slugify(spec.name)) / "runs" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    model = train_of(state)["train_model"]
    sets, steps = run_settings(state, model)
    try:
        record = jobs.start_detached(dataset_of(state)["data_path"], model, run_dir,
                                     preset=train_of(state).get("preset") or spec.preset,
                                     project=slugify(spec.name), sets=sets, max_steps=steps)
    except (MTWError, OSError) as exc:
        say(f"Training could not start: {exc}")
        return go(Node.confirm_training)
    if model == TINY_RANDOM:
        say(f"**{TINY_RANDOM}** run: {steps} steps at a high learning rate — a quick demonstration of every step "
            "of the journey, not a useful model.")
    stage("train")
    say(f"Training started (run `{record.id}`). Live progress follows; the run folder is `{run_dir}`.")
    # a supervised run: what follows it (its comparison, a restart) is not a preference round's
    return go(Node.watch_training, {"run_dir": str(run_dir), "train_outcome": {"status": "running"}, "events_since": 0,
                                    "pref_from": ""})


@routes(Node.watch_training, Node.after_training)
def resume_training(state: WizardState) -> Command[Any]:
    """Continue a stopped run where its last checkpoint left off (same data order and schedule)."""
    from tools import jobs

    run_dir = train_of(state)["run_dir"]
    events = Path(run_dir) / "events.jsonl"
    since = events.stat().st_size if events.exists() else 0
    try:
        jobs.start_detached(dataset_of(state)["data_path"], train_of(state)["train_model"], run_dir, resume=True,
                            project=slugify(spec_of(state).name))
    except (MTWError, OSError) as exc:
        say(f"The run could not be resumed: {exc}")
        return go(Node.after_training)
    stage("train")
    say(f"Resuming `{Path(run_dir).name}` from its last checkpoint.")
    return go(Node.watch_training, {"train_outcome": {"status": "running"}, "events_since": since})


@routes(asks=(Node.on_training_input,))
def watch_training(state: WizardState) -> Command[Any]:
    """Wait for the run to end while the chat shows it live; Stop (or saying "stop") ends it early."""
    return ask(state, "Training is running.", then=Node.on_training_input, stage="train", kind="training",
               run_dir=train_of(state)["run_dir"], since=train_of(state).get("events_since", 0),
               choices={"stop": "Stop"})


@routes(Node.listen)
def on_training_input(state: WizardState) -> Command[Any]:
    """A click or message while the run goes on: Stop checkpoints and ends it; anything else waits."""
    from tools.jobs import stop_run

    if state["intent"].get("value") == "stop":
        if stop_run(train_of(state)["run_dir"]):
            say("Stopping — the run saves a checkpoint first, so nothing is lost.")
        else:
            say("That run is not running any more.")
    else:
        say("Training is running; its progress shows above. Say “stop” (or click **Stop**) to end it early, or ask "
            "me anything meanwhile.")
    return go(Node.listen)


@routes(Node.choose_next, asks=(Node.on_after_run,))
def after_training(state: WizardState) -> Command[Any]:
    """Say how the run ended and offer every way on: after done, stop and failure alike."""
    outcome = dict((state.get("intent") or {}).get("value") or train_of(state).get("train_outcome") or {})
    status = outcome.get("status")
    run_dir = train_of(state).get("run_dir", "")
    update = {"train_outcome": outcome}
    if status == "done":
        stage("evaluate")
        health = outcome.get("health") or {}
        if health.get("fix"):
            text = f"**Training finished**, but: {health.get('message', '')}\n\n**Fix:** {health.get('fix_text', '')}"
            return ask(state, text, then=Node.on_after_run, stage="evaluate", effects=("apply_fix",), update=update,
                       choices={"apply_fix": f"Apply the fix and restart ({_setting_words(health['fix'])})",
                                "keep": "Go on with this model"})
        say(f"**Training finished.** The adapter is in `{run_dir}/adapter`.")
        return go(Node.choose_next, update)
    if status == "stopped":
        step = f" at step {outcome['step']}" if outcome.get("step") else ""
        text = (f"Training was stopped{step}; its checkpoint is saved. What now? (You can also say a setting, "
                "e.g. “use 1 epoch”, and restart with it.)")
        choices = {"resume": "Resume training", "restart": "Change a setting and restart"}
        if outcome.get("can_evaluate"):
            choices["evaluate_checkpoint"] = "Evaluate the last checkpoint"
        choices["dataset"] = "Back to the dataset"
        return ask(state, text, then=Node.on_after_run, stage="train", choices=choices,
                   effects=("resume", "evaluate_checkpoint"), update=update)
    message = outcome.get("message") or "the process ended unexpectedly"
    fix_text = outcome.get("fix_text") or outcome.get("fix") or ""
    choices = {}
    if outcome.get("fix_sets"):
        choices["apply_fix"] = "Apply the fix and restart"
    choices.update({"restart": "Change settings", "dataset": "Back to the dataset"})
    if outcome.get("resumable"):
        choices = {"resume": "Resume training", **choices}
    return ask(state, f"Training did not finish: {message}" + (f"\n\n**Fix:** {fix_text}" if fix_text else ""),
               then=Node.on_after_run, stage="train", choices=choices, effects=("apply_fix", "resume"), update=update)


def _setting_words(fix: dict[str, Any]) -> str:
    """Settings as a person reads them: "learning rate 0.001, epochs 6"."""
    return ", ".join(f"{k.replace('_', ' ')} {v:g}" if isinstance(v, float) else f"{k.replace('_', ' ')} {v}"
                     for k, v in fix.items())


@routes(Node.configure_training, Node.resume_training, Node.choose_next, Node.evaluate_model, Node.choose_data,
        Node.improve_with_ratings)
def on_after_run(state: WizardState) -> Command[Any]:
    """Resume, restart with a fix or a changed setting, evaluate the checkpoint, or go back to the dataset."""
    picked = state["intent"].get("value")
    outcome = train_of(state).get("train_outcome") or {}
    if picked == "resume":
        return go(Node.resume_training)
    if picked == "apply_fix":
        fix = outcome.get("fix_sets") or (outcome.get("health") or {}).get("fix") or {}
        sets = {**(train_of(state).get("train_sets") or {}), **{k: str(v) for k, v in fix.items()}}
        return go(Node.configure_training, {"train_sets": sets, "plan_changed": f"the fix — {_setting_words(fix)}"})
    if picked == "keep":
        say(f"The adapter is in `{train_of(state).get('run_dir', '')}/adapter`.")
        return go(Node.choose_next)
    if picked == "evaluate_checkpoint":
        return go(Node.evaluate_model)
    if picked == "dataset":
        return go(Node.choose_data)
    # a preference round is restarted as one: its judgements, not the SFT plan
    if playground_of(state).get("pref_from"):
        return go(Node.improve_with_ratings)
    return go(Node.configure_training)
