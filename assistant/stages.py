"""The journey after the interview: build the dataset, check it, configure, train, then evaluate and deploy."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from assistant.context import WizardContext
from assistant.state import WizardState
from tools.errors import MTWError, UsageError
from tools.project import ProjectSpec, project_dir, slugify

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SAMPLES = {"classification": EXAMPLES / "pm_task_types.jsonl", "generation": EXAMPLES / "pm_dataset.jsonl"}
DRAFT_BATCH = 5
SHOWN_ISSUES = 8
TRY_STEPS = 20
"""Optimizer steps of a tiny-random run started from the chat (it only demonstrates the workflow)."""
TRY_SETS = ["learning_rate=3e-3"]
"""A random model needs a bold learning rate to show learning within those few steps."""


def say(text: str) -> None:
    """Send a chat message (Markdown) from inside a node."""
    get_stream_writer()({"say": text})


def stage(index: int) -> None:
    """Mark the journey stage (an index into graph.STAGES) as the current one."""
    get_stream_writer()({"stage": index})


def _spec(state: WizardState) -> ProjectSpec:
    return ProjectSpec(**state["spec"])


def _data_dir(state: WizardState) -> Path:
    return project_dir(slugify(_spec(state).name)) / "data"


def _pick(answer: Any, choices: dict[str, str]) -> str:
    """A clicked key, or a typed answer matched to a choice's key or label."""
    text = str(answer or "").strip().lower()
    for key, label in choices.items():
        if text in (key, label.lower()):
            return key
    return next((k for k, v in choices.items() if text and text in v.lower()), "")


# -------------------------------------------------------------------------------- build the dataset

def choose_data(state: WizardState) -> dict[str, Any]:
    """Ask where the training examples come from: a file, the assistant's drafts, or the sample set."""
    stage(2)
    spec = _spec(state)
    choices = {"upload": "Upload a file of examples"}
    if state.get("llm_ok") and spec.task_type == "generation":
        choices["draft"] = "Draft examples with me"
    if spec.task_type in SAMPLES:
        choices["sample"] = "Start from the sample PM dataset"
    answer = interrupt({"kind": "question", "slot": "_data", "choices": choices, "optional": False,
                        "text": "**Now your training examples.** 50–100 good examples is a solid first round "
                                "(10 is the minimum). Where should they come from?"})
    return {"data_choice": _pick(answer, choices)}


def route_after_choose_data(state: WizardState) -> Literal["receive_file", "use_sample", "draft_batch", "choose_data"]:
    """Follow the user's choice; an unknown answer asks again."""
    return {"upload": "receive_file", "sample": "use_sample", "draft": "draft_batch"}.get(
        state.get("data_choice", ""), "choose_data")  # type: ignore[return-value]


def receive_file(state: WizardState) -> dict[str, Any]:
    """Take an uploaded file into the project (the original upload is never changed)."""
    upload = interrupt({"kind": "file", "text": "Upload your examples — JSONL, JSON, CSV or TSV.",
                        "accept": [".jsonl", ".json", ".csv", ".tsv", ".txt"]})
    if not upload:
        return {"data_choice": "", "data_path": ""}
    dest = _data_dir(state) / Path(upload["name"]).name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(upload["path"], dest)
    return {"data_path": str(dest)}


def route_after_receive(state: WizardState) -> Literal["check_data", "choose_data"]:
    """Check a received file; without one, ask again."""
    return "check_data" if state.get("data_path") else "choose_data"


def use_sample(state: WizardState) -> dict[str, Any]:
    """Copy the sample dataset into the project so the user can try the whole journey."""
    src = SAMPLES[_spec(state).task_type or "generation"]
    dest = _data_dir(state) / src.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    say(f"Copied the sample dataset to `{dest}`.")
    return {"data_path": str(dest)}


async def draft_batch(state: WizardState, runtime: Runtime[WizardContext]) -> dict[str, Any]:
    """Ask the assistant model for a few examples written from the spec (each passed the checks)."""
    from tools.dataset.draft import draft_examples
    from tools.dataset.store import DatasetStore

    spec = _spec(state)
    store = DatasetStore(spec.name)
    say(f"Drafting {DRAFT_BATCH} examples from your project — this takes a moment.")
    try:
        drafts = await asyncio.to_thread(draft_examples, spec, DRAFT_BATCH, runtime.context.llm,
                                         existing=store.examples())
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        drafts = []
    if not drafts:
        say("No usable drafts came back this time.")
    return {"drafts": [d.model_dump() for d in drafts], "draft_index": 0}


def review_draft(state: WizardState) -> dict[str, Any]:
    """Show one draft; keep it in the project's dataset or drop it."""
    from tools.dataset.model import Example
    from tools.dataset.store import DatasetStore

    i, drafts = state.get("draft_index", 0), state.get("drafts", [])
    ex = Example(**drafts[i])
    body = "\n\n".join(f"**{m.role.capitalize()}:** {m.content}" for m in ex.messages)
    answer = interrupt({"kind": "question", "slot": "_review", "optional": False,
                        "text": f"Draft {i + 1} of {len(drafts)}:\n\n{body}",
                        "choices": {"keep": "Keep", "drop": "Drop"}})
    if _pick(answer, {"keep": "Keep", "drop": "Drop"}) == "keep":
        DatasetStore(_spec(state).name).add(ex)
    return {"draft_index": i + 1}


def route_after_review(state: WizardState) -> Literal["review_draft", "after_drafts"]:
    """Next draft, or the what-now question when the batch is done."""
    return "review_draft" if state.get("draft_index", 0) < len(state.get("drafts", [])) else "after_drafts"


def after_drafts(state: WizardState) -> dict[str, Any]:
    """Draft more, or save the kept examples as a dataset version and check them."""
    from tools.dataset.store import DatasetStore

    store = DatasetStore(_spec(state).name)
    choices = {"more": f"Draft {DRAFT_BATCH} more", "check": "Check my examples"}
    answer = interrupt({"kind": "question", "slot": "_drafts", "optional": False, "choices": choices,
                        "text": f"You have **{len(store.examples())}** examples so far."})
    if _pick(answer, choices) != "check":
        return {"data_choice": "draft"}
    version = store.save(note="drafted in the chat")
    return {"data_choice": "check", "data_path": str(version.path)}


def route_after_drafts(state: WizardState) -> Literal["draft_batch", "check_data"]:
    """Loop on drafting until the user wants the check."""
    return "check_data" if state.get("data_choice") == "check" else "draft_batch"


# -------------------------------------------------------------------------------- check it

async def check_data(state: WizardState) -> dict[str, Any]:
    """The plain-language dataset report: a summary first, then each problem with its line and fix."""
    from tools.dataset.checks import check_file

    stage(3)
    path = state["data_path"]
    try:
        report = await asyncio.to_thread(check_file, path)
    except MTWError as exc:
        say(f"I could not read `{Path(path).name}`: {exc.message} {exc.fix}")
        return {"data_ok": False, "data_errors": 1}
    errors = [i for i in report.issues if i.severity == "error"]
    warnings = [i for i in report.issues if i.severity == "warning"]
    lines = [f"**{report.examples} examples** ({report.format}) — {len(errors)} problems to fix, "
             f"{len(warnings)} suggestions."]
    for issue in (errors + warnings)[:SHOWN_ISSUES]:
        where = f"line {issue.line}: " if issue.line else ""
        mark = "❌" if issue.severity == "error" else "⚠️"
        lines.append(f"- {mark} {where}{issue.message} **Fix:** {issue.fix}")
    if len(errors) + len(warnings) > SHOWN_ISSUES:
        lines.append(f"- … and {len(errors) + len(warnings) - SHOWN_ISSUES} more (`mtw check {path}` lists all).")
    say("\n".join(lines))
    return {"data_ok": report.ok, "data_errors": len(errors)}


def decide_after_check(state: WizardState) -> dict[str, Any]:
    """Fix what can be fixed, upload a corrected file, or go on when nothing blocks training."""
    choices = {"fix": "Fix what can be fixed", "upload": "Upload a corrected file"}
    if state.get("data_ok"):
        choices = {"continue": "Continue to training", "fix": "Clean it up (duplicates, validation split)"}
    answer = interrupt({"kind": "question", "slot": "_checked", "optional": False, "choices": choices,
                        "text": "Your data is ready to train on." if state.get("data_ok")
                        else "These problems would stop training. What would you like to do?"})
    return {"data_choice": _pick(answer, choices)}


def route_after_decide(state: WizardState) -> Literal["fix_data", "receive_file", "configure_training",
                                                     "decide_after_check"]:
    """Follow the choice made after the report."""
    return {"fix": "fix_data", "upload": "receive_file", "continue": "configure_training"}.get(
        state.get("data_choice", ""), "decide_after_check")  # type: ignore[return-value]


async def fix_data(state: WizardState) -> dict[str, Any]:
    """Write a cleaned copy next to the file (the original is kept) and say what changed."""
    from tools.dataset.fix import fix_dataset

    src = Path(state["data_path"])
    out = src.with_name(f"{src.stem.removesuffix('.clean')}.clean.jsonl")
    try:
        result = await asyncio.to_thread(fix_dataset, src, out)
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return {}
    changes = "\n".join(f"- {c}" for c in result.changes) or "- nothing needed changing"
    say(f"Wrote a cleaned copy to `{out}` ({result.train_examples} for training, "
         f"{result.validation_examples} held out for validation):\n{changes}")
    return {"data_path": str(result.train_path)}


# -------------------------------------------------------------------------------- configure and train

def _try_run(model: str) -> tuple[list[str], int | None]:
    """Overrides and step cap for a demonstration run on tiny-random; none for real models."""
    from tools.train.catalog import TINY_RANDOM

    return (TRY_SETS, TRY_STEPS) if model == TINY_RANDOM else ([], None)


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


async def configure_training(state: WizardState) -> dict[str, Any]:
    """Explain the plan — base model, preset, memory and time — before anything starts."""
    from tools.download import needs_download
    from tools.train.catalog import TINY_RANDOM, load_tokenizer
    from tools.train.config import build_config
    from tools.train.estimate import estimate

    stage(4)
    spec = _spec(state)
    model: str = state.get("train_model") or ""
    if not model:
        model, why = await asyncio.to_thread(_base_for, spec)
        if why:
            say(why)
    if model not in ("minilm", TINY_RANDOM):
        try:
            if await asyncio.to_thread(needs_download, model):
                offer = await asyncio.to_thread(_download_offer, model)
                return {"train_model": model, "base_missing": True, "base_offer": offer}
            await asyncio.to_thread(load_tokenizer, model)
        except MTWError as exc:
            say(f"{exc.message}\n\n**Fix:** {exc.fix}\n\nMeanwhile you can run the whole journey with the built-in "
                 "**tiny-random** model: it trains in seconds and learns only the format of your data — "
                 "good for trying the steps, not for real answers.")
            model = TINY_RANDOM
    try:
        sets, steps = _try_run(model)
        cfg = build_config(model, state["data_path"], preset=spec.preset, sets=sets, max_steps=steps)
        est = await asyncio.to_thread(estimate, cfg)
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return {"train_model": model, "base_missing": False}
    changes = "".join(f"\n- {c}" for c in est.changes)
    say(f"**Plan:** LoRA on **{model}** with the *{spec.preset}* preset (learning rate {cfg.learning_rate:g}, "
         f"batch {cfg.batch_size}, {cfg.epochs} epochs, context {cfg.context}).\n\n{est.verdict}{changes}")
    return {"train_model": model, "base_missing": False}


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


def route_after_configure(state: WizardState) -> Literal["offer_base_download", "confirm_training"]:
    """A base model that is not on this machine is offered for download first."""
    return "offer_base_download" if state.get("base_missing") else "confirm_training"


async def offer_base_download(state: WizardState) -> dict[str, Any]:
    """Download the missing base model with progress, or try the steps on tiny-random; the user decides."""
    from tools.download import download, human_bytes
    from tools.train.catalog import TINY_RANDOM

    model, offer = state["train_model"], state.get("base_offer", {})
    size = human_bytes(offer["bytes"]) if offer.get("bytes") else ""
    choices = {"download": f"Download {model}" + (f" (~{size})" if size else ""),
               "tiny": "Use tiny-random to try the steps"}
    repo = offer.get("repo", model)
    where = f"about **{size}** of disk space in" if size else "space in"
    text = (f"The weights of **{model}** are not on this machine yet. Downloading them from Hugging Face (`{repo}`) "
            f"takes {where} `{offer.get('cache', '')}`; after that, training works offline.")
    if offer.get("gated"):
        text += (f"\n\n`{repo}` asks you to accept its licence first: open https://huggingface.co/{repo}, accept it, "
                 "then log in on this machine with `hf auth login`.")
    if offer.get("problem"):
        text += f"\n\nRight now the download would not work: {offer['problem']}"
    text += ("\n\nOr try every step first with the built-in **tiny-random** model: it trains in seconds and learns "
             "only the format of your data — good for trying the steps, not for real answers.")
    picked = _pick(interrupt({"kind": "question", "slot": "_base", "optional": False, "choices": choices,
                              "text": text}), choices)
    if picked == "tiny":
        return {"train_model": TINY_RANDOM, "base_missing": False}
    if picked != "download":
        return {}
    writer, loop = get_stream_writer(), asyncio.get_running_loop()
    shown = [-1]

    def report(status: str, done: int, total: int) -> None:
        # called from the download thread: hand each new percent to the event loop, which owns the stream
        percent = 100 * done // total if total else 0
        if percent != shown[0]:
            shown[0] = percent
            loop.call_soon_threadsafe(writer, {"progress": {"status": f"{model} ({status})", "completed": done,
                                                            "total": total}})

    try:
        folder = await asyncio.to_thread(download, model, report)
    except MTWError as exc:
        say(f"The download did not finish: {exc.message}\n\n**Fix:** {exc.fix}")
        return {"base_offer": {**offer, "problem": ""}}
    say(f"**{model}** is downloaded and ready (`{folder}`).")
    return {"base_missing": False}


def route_after_base_offer(state: WizardState) -> Literal["configure_training", "offer_base_download"]:
    """Plan with the downloaded model (or tiny-random); after a failed download, offer the choices again."""
    return "offer_base_download" if state.get("base_missing") else "configure_training"


def confirm_training(state: WizardState) -> dict[str, Any]:
    """Start only when the user says so."""
    from tools.train.catalog import TINY_RANDOM

    model = state.get("train_model", "")
    choices = {"start": "Start training"}
    if model != TINY_RANDOM and model != "minilm":
        choices["tiny"] = "Try the workflow with tiny-random first"
    answer = interrupt({"kind": "question", "slot": "_train", "optional": False, "choices": choices,
                        "text": "Training runs in the background: you can close this page and come back."})
    picked = _pick(answer, choices)
    return {"train_model": TINY_RANDOM if picked == "tiny" else model, "data_choice": picked}


def route_after_confirm_training(state: WizardState) -> Literal["start_training", "confirm_training"]:
    """Start on a clear yes."""
    return "start_training" if state.get("data_choice") in ("start", "tiny") else "confirm_training"


def start_training(state: WizardState) -> dict[str, Any]:
    """Launch `mtw train` as its own process: a crash there cannot take the chat down."""
    from tools import jobs
    from tools.train.catalog import TINY_RANDOM

    spec = _spec(state)
    run_dir = project_dir(slugify(spec.name)) / "runs" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    sets, steps = _try_run(state["train_model"])
    record = jobs.start_detached(state["data_path"], state["train_model"], run_dir, preset=spec.preset,
                                 project=slugify(spec.name), sets=sets, max_steps=steps)
    if steps:
        say(f"**{TINY_RANDOM}** run: {steps} steps at a high learning rate — a quick demonstration of every "
             "step of the journey, not a useful model.")
    stage(5)
    say(f"Training started (run `{record.id}`). Live progress follows; the run folder is `{run_dir}`.")
    return {"run_dir": str(run_dir)}


def watch_training(state: WizardState) -> dict[str, Any]:
    """Wait for the run to end; the chat shows its progress meanwhile and resumes here with the outcome."""
    outcome = interrupt({"kind": "training", "run_dir": state["run_dir"]})
    return {"train_outcome": dict(outcome or {})}


def after_training(state: WizardState) -> dict[str, Any]:
    """Say how the run ended; after a finished run, offer the comparison and the export."""
    outcome = state.get("train_outcome", {})
    run_dir = state.get("run_dir", "")
    status = outcome.get("status")
    if status == "stopped":
        say(f"Training was stopped. Continue it any time with `mtw train --out {run_dir} --resume`.")
        return {"data_choice": "done"}
    if status != "done":
        say(f"Training did not finish: {outcome.get('message') or 'the process ended unexpectedly'} "
             f"{outcome.get('fix', '')}".strip())
        return {"data_choice": "done"}
    stage(6)
    say(f"**Training finished.** The adapter is in `{run_dir}/adapter`.")
    return {"data_choice": ""}


def choose_next(state: WizardState) -> dict[str, Any]:
    """After a finished run: compare with the base, put it into Ollama, or stop here."""
    choices = {"eval": "Compare it with the base model", "export": "Put it into Ollama", "done": "Stop here"}
    if state.get("evaluated"):
        choices = {"score": "Score a few answers myself", **choices}
        choices.pop("eval")
    exported = state.get("exported_name")
    if exported:
        choices.pop("export")
        if not state.get("checked_export"):
            choices = {"check": f"Check {exported} as Ollama serves it", **choices}
    answer = interrupt({"kind": "question", "slot": "_next", "optional": False, "choices": choices,
                        "text": "What next?"})
    return {"data_choice": _pick(answer, choices) or "_again"}


def route_after_training(state: WizardState) -> Literal["choose_next", "__end__"]:
    """Only a finished run goes on to evaluation and export."""
    return "__end__" if state.get("data_choice") == "done" else "choose_next"


def route_after_next(state: WizardState) -> Literal["evaluate_model", "export_model", "score_answer", "choose_next",
                                                   "__end__"]:
    """Follow the choice; 'stop here' ends the conversation's journey."""
    return {"eval": "evaluate_model", "check": "evaluate_model", "export": "export_model", "score": "score_answer",
            "done": "__end__"}.get(
        state.get("data_choice", ""), "choose_next")  # type: ignore[return-value]


async def evaluate_model(state: WizardState, runtime: Runtime[WizardContext]) -> dict[str, Any]:
    """Base vs tuned on held-out data and test prompts; the plain verdict and the charts."""
    from tools.evaluate.run import evaluate_run

    stage(6)
    run_dir = Path(state["run_dir"])
    judge = runtime.context.llm.model if state.get("llm_ok") else None
    served = state.get("exported_name") if state.get("data_choice") == "check" else None
    tuned = f"**{served}** as your Ollama serves it" if served else "the tuned model"
    say(f"Comparing {tuned} with its base on your held-out examples and the test prompts"
         + (f", with **{judge}** as the judge" if judge else "") + " — this takes a minute or two.")
    try:
        report = await asyncio.to_thread(evaluate_run, run_dir, judge_model=judge, ollama_model=served)
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return {"evaluated": False} if not served else {}
    if served:
        from tools.evaluate.report import report_dir

        say(f"**Verdict for {served}.** {report['verdict']}\n\nThe full report is "
            f"`{report_dir(run_dir, served) / 'report.md'}` (the comparison of the local adapter stays in "
            f"`{run_dir / 'eval'}`).")
        return {"checked_export": True, "evaluated": True}
    say(f"**Verdict.** {report['verdict']}\n\nThe full report with every answer side by side is "
         f"`{run_dir / 'eval' / 'report.md'}`.")
    writer = get_stream_writer()
    for name, file in report.get("charts", {}).items():
        if name.endswith("_plotly"):
            writer({"figure": {"name": name.removesuffix("_plotly"),
                               "json": (run_dir / "eval" / file).read_text(encoding="utf-8")}})
    return {"evaluated": True}


async def export_model(state: WizardState, runtime: Runtime[WizardContext]) -> dict[str, Any]:
    """Put the model into Ollama (or, with Ollama away, write everything and give the exact commands)."""
    from tools.export.pipeline import export_run
    from tools.registry import suggest_name

    stage(7)
    spec = _spec(state)
    base = "PM-" + "".join(w.capitalize() for w in slugify(spec.name).split("-")[:2])
    name = await asyncio.to_thread(suggest_name, base)
    ok, _, _ = await runtime.context.llm.status()
    dry = not ok
    notes: list[str] = []
    writer, loop = get_stream_writer(), asyncio.get_running_loop()
    shown: list[tuple[str, int]] = []

    def report(what: str, done: int, total: int) -> None:
        # called from the export thread: hand each new phase or percent to the event loop, which owns the stream
        key = (what, 100 * done // total if total else -1)
        if not shown or shown[-1] != key:
            shown.append(key)
            loop.call_soon_threadsafe(writer, {"progress": {"title": "Exporting", "status": what, "completed": done,
                                                            "total": total}})

    try:
        result = await asyncio.to_thread(export_run, Path(state["run_dir"]), name, dry_run=dry, say=notes.append,
                                         progress=report)
    except MTWError as exc:
        say(f"The export did not work: {exc.message} {exc.fix}")
        return {"data_choice": "_again"}
    lines = [f"**{result.name}** — route *{result.route}*: {result.reason}"]
    lines += [f"- {'✅' if c.ok else '❌'} {c.message}" + (f" **Fix:** {c.fix}" if c.fix and not c.ok else "")
              for c in result.checks]
    if dry:
        lines.append("Ollama is not reachable, so I wrote everything to "
                     f"`{result.export_dir}`. When Ollama runs, create the model with:\n\n"
                     + "\n".join(f"`{c}`" for c in result.commands))
    else:
        if result.ok:
            lines.append(f"Try it: `ollama run {result.name}`")
        say("\n".join(lines))
        # what Ollama now serves can be checked against the base, as the user will meet it
        return {"exported_name": result.name, "data_choice": "_again"}
    say("\n".join(lines))
    return {"data_choice": "done"}


def route_after_export(state: WizardState) -> Literal["choose_next", "__end__"]:
    """A dry run ends with the commands to finish by hand; a real export (or a failed one) offers what next."""
    return "__end__" if state.get("data_choice") == "done" else "choose_next"


SCORED_ANSWERS = 3
SCORED_CRITERIA = ("format", "tone")
"""What a person judges best at a glance; the judge model scores all five rubric criteria."""


def score_answer(state: WizardState) -> dict[str, Any]:
    """Ask the user to score the tuned model's answers (format, then tone) so the judge can be checked."""
    import json

    from tools.evaluate.agreement import record_user_scores

    run_dir = Path(state["run_dir"])
    report = json.loads((run_dir / "eval" / "report.json").read_text(encoding="utf-8"))
    prompts = report.get("prompts", [])[:SCORED_ANSWERS]
    i, c = state.get("score_index", 0), state.get("score_criterion", 0)
    item, criterion = prompts[i], SCORED_CRITERIA[c]
    answer = str((item.get("tuned") or {}).get("answer", ""))[:1200]
    choices = {str(n): str(n) for n in range(1, 6)}
    picked = _pick(interrupt({
        "kind": "question", "slot": "_score", "optional": False, "choices": choices,
        "text": f"Answer {i + 1} of {len(prompts)} — **{item['prompt']}**\n\n> {answer or '(empty answer)'}\n\n"
                f"How good is its **{criterion}**, 1 (poor) to 5 (exactly what you would write)?"}), choices)
    if not picked:
        return {}
    record_user_scores(run_dir, item["id"], "tuned", {criterion: int(picked)})
    c += 1
    if c == len(SCORED_CRITERIA):
        i, c = i + 1, 0
    return {"score_index": i, "score_criterion": c, "scored_all": i >= len(prompts)}


def route_after_score(state: WizardState) -> Literal["score_answer", "report_agreement"]:
    """Keep asking until every chosen answer is scored."""
    return "report_agreement" if state.get("scored_all") else "score_answer"


async def report_agreement(state: WizardState) -> dict[str, Any]:
    """Say how the judge's scores compare with the user's."""
    from tools.evaluate.run import refresh_agreement

    agreed = await asyncio.to_thread(refresh_agreement, state["run_dir"])
    if agreed:
        say(f"Thanks — saved. The judge model agrees with you within one point on {agreed['within_one']:.0%} of "
             f"{agreed['n']} scores (mean difference {agreed['mean_abs_diff']:.1f}).")
    else:
        say("Thanks — your scores are saved with the report. Run the comparison with a judge model "
             f"(`mtw eval {state['run_dir']} --judge MODEL`) to see how well it agrees with you.")
    return {"score_index": 0, "score_criterion": 0, "scored_all": False}
