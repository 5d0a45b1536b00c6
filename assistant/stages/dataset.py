"""Build and check the dataset: upload, sample or drafts; the plain report; fixes; never a dead end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Command

from assistant.context import WizardContext
from assistant.conversation import ask, go
from assistant.state import WizardState
from assistant.ui_events import say, stage
from tools.errors import MTWError
from tools.project import ProjectSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAMPLES = {"classification": EXAMPLES / "pm_task_types.jsonl", "generation": EXAMPLES / "pm_dataset.jsonl"}
ACCEPT = [".jsonl", ".json", ".csv", ".tsv", ".txt"]
DRAFT_BATCH = 5
SHOWN_ISSUES = 8
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM", b"%PDF")


def _spec(state: WizardState) -> ProjectSpec:
    return ProjectSpec(**state["spec"])


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def choose_data(state: WizardState) -> Command[Any]:
    """Ask where the training examples come from: a file, the assistant's drafts, or the sample set."""
    stage("dataset")
    spec = _spec(state)
    choices = {"upload": "Upload a file of examples"}
    if state.get("llm_ok") and spec.task_type == "generation":
        choices["draft"] = "Draft examples with me"
    if spec.task_type in SAMPLES:
        choices["sample"] = "Start from the sample PM dataset"
    if state.get("data_path"):
        choices["keep"] = f"Keep {Path(state['data_path']).name}"
    return ask(state, "**Now your training examples.** 50–100 good examples is a solid first round (10 is the "
                      "minimum). Where should they come from?", then="on_data_choice", stage="dataset",
               choices=choices)


def on_data_choice(state: WizardState) -> Command[Any]:
    """Follow the choice."""
    return go({"upload": "ask_file", "sample": "use_sample", "draft": "draft_batch", "keep": "check_data"}[
        str(state["intent"]["value"])], {"adding": False})


def ask_file(state: WizardState) -> Command[Any]:
    """Ask for a file: attached to a message (the paperclip) or dropped on the chat; the chat stays free."""
    adding = state.get("adding")
    text = ("Attach the file with more examples" if adding else "Attach your examples file") + \
        " with the 📎 paperclip below (or drop it on the chat) and send — JSONL, JSON, CSV or TSV."
    return ask(state, text, then="receive_file", stage="dataset", kind="file", accept=ACCEPT,
               choices={"back": "Choose another way"})


def unreadable_upload(path: Path, name: str) -> str:
    """Why an upload cannot be a dataset, in one sentence with the fix; "" when it may be one."""
    try:
        size = path.stat().st_size
        head = path.open("rb").read(16)
    except OSError as exc:
        return f"I could not read {name} ({exc.strerror}). Please attach it again."
    if size == 0:
        return f"**{name}** is empty (0 bytes). Attach the file that has your examples in it."
    if head.startswith(IMAGE_MAGIC):
        return (f"**{name}** looks like an image or a PDF, not a file of examples. Attach a JSONL, JSON, CSV or "
                "TSV file (one example per line or row).")
    return ""


async def receive_file(state: WizardState) -> Command[Any]:
    """Take an uploaded file into the project as its own version (nothing is overwritten), then check it."""
    intent = state["intent"]
    if intent.get("kind") != "file":
        return go("choose_data")
    upload = intent["value"]
    src, name = Path(upload["path"]), Path(str(upload.get("name") or "upload")).name
    problem = unreadable_upload(src, name)
    if problem:
        say(problem)
        return go("listen")
    try:
        dest = await asyncio.to_thread(keep_upload, _spec(state).name, src, name)
        if state.get("adding") and state.get("data_path"):
            dest = await asyncio.to_thread(combine, _spec(state).name, Path(state["data_path"]), dest)
            say(f"Added the examples of **{name}** to your dataset (`{dest.name}`).")
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return go("listen")
    return go("check_data", {"data_path": str(dest), "adding": False})


def keep_upload(project: str, src: Path, name: str) -> Path:
    """Take an upload into the project as its own version: same-name uploads never overwrite each other."""
    from tools.dataset.store import DatasetStore

    return DatasetStore(project).import_file(src, name=name).path


def combine(project: str, current: Path, more: Path) -> Path:
    """A new version of the project's dataset: what it holds (or the current file) plus the new file's examples."""
    from tools.dataset.readers import read_dataset
    from tools.dataset.store import DatasetStore

    store = DatasetStore(project)
    sources = [more] if store.examples() else [current, more]
    for path in sources:
        for ex in read_dataset(path).examples:
            store.add(ex.model_copy(update={"line": None}))
    return store.save(note=f"added {more.name}").path


def use_sample(state: WizardState) -> Command[Any]:
    """Copy the sample dataset into the project so the user can try the whole journey."""
    src = SAMPLES[_spec(state).task_type or "generation"]
    dest = keep_upload(_spec(state).name, src, src.name)
    say(f"Copied the sample dataset to `{dest}`.")
    return go("check_data", {"data_path": str(dest)})


async def draft_batch(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
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
        return go("after_drafts", {"drafts": [], "draft_index": 0})
    return go("review_draft", {"drafts": [d.model_dump() for d in drafts], "draft_index": 0})


def review_draft(state: WizardState) -> Command[Any]:
    """Show one draft; keep it in the project's dataset or drop it."""
    from tools.dataset.model import Example

    i, drafts = state.get("draft_index", 0), state.get("drafts", [])
    if i >= len(drafts):
        return go("after_drafts")
    ex = Example(**drafts[i])
    body = "\n\n".join(f"**{m.role.capitalize()}:** {m.content}" for m in ex.messages)
    return ask(state, f"Draft {i + 1} of {len(drafts)}:\n\n{body}", then="on_review", stage="dataset",
               choices={"keep": "Keep", "drop": "Drop"})


def on_review(state: WizardState) -> Command[Any]:
    """Keep the draft (saved to the project's dataset at once) or drop it; then the next one."""
    from tools.dataset.model import Example
    from tools.dataset.store import DatasetStore

    i = state.get("draft_index", 0)
    if state["intent"].get("value") == "keep":
        DatasetStore(_spec(state).name).add(Example(**state["drafts"][i]))
    return go("review_draft", {"draft_index": i + 1})


def after_drafts(state: WizardState) -> Command[Any]:
    """Draft more, or save the kept examples as a dataset version and check them."""
    from tools.dataset.store import DatasetStore

    n = len(DatasetStore(_spec(state).name).examples())
    choices = {"more": f"Draft {DRAFT_BATCH} more", "upload": "Upload a file instead"}
    if n:
        choices["check"] = "Check my examples"
    return ask(state, f"You have **{_plural(n, 'example')}** so far.", then="on_after_drafts", stage="dataset",
               choices=choices)


def on_after_drafts(state: WizardState) -> Command[Any]:
    """Loop on drafting until the user wants the check."""
    from tools.dataset.store import DatasetStore

    picked = state["intent"]["value"]
    if picked == "more":
        return go("draft_batch")
    if picked == "upload":
        return go("ask_file", {"adding": bool(state.get("data_path"))})
    version = DatasetStore(_spec(state).name).save(note="drafted in the chat")
    return go("check_data", {"data_path": str(version.path)})


async def check_data(state: WizardState) -> Command[Any]:
    """The plain-language report: a summary first, then each problem with its line and fix; then what next."""
    from tools.dataset.store import checked

    stage("check")
    path = state["data_path"]
    try:
        report = await asyncio.to_thread(checked, path)
    except MTWError as exc:
        say(f"I could not read `{Path(path).name}`: {exc.message} {exc.fix}")
        return go("decide_after_check", {"data_ok": False, "data_errors": 1, "too_few": False})
    errors = [i for i in report.issues if i.severity == "error"]
    warnings = [i for i in report.issues if i.severity == "warning"]
    lines = [f"**{_plural(report.examples, 'example')}** ({report.format}) — {_plural(len(errors), 'problem')} "
             f"to fix, {_plural(len(warnings), 'suggestion')}."]
    for issue in (errors + warnings)[:SHOWN_ISSUES]:
        where = f"line {issue.line}: " if issue.line else ""
        message = issue.message
        if issue.line and message.lower().startswith(f"line {issue.line}"):
            where = ""  # the message names its line already
        mark = "❌" if issue.severity == "error" else "⚠️"
        lines.append(f"- {mark} {where}{message} **Fix:** {issue.fix}")
    if len(errors) + len(warnings) > SHOWN_ISSUES:
        lines.append(f"- … and {len(errors) + len(warnings) - SHOWN_ISSUES} more (`mtw check {path}` lists all).")
    say("\n".join(lines))
    too_few = bool(errors) and all(i.code == "too_few_examples" for i in errors)
    return go("decide_after_check", {"data_ok": report.ok, "data_errors": len(errors), "too_few": too_few,
                                     "data_examples": report.examples})


def decide_after_check(state: WizardState) -> Command[Any]:
    """Fix, add or upload, or go on: every outcome of the check has a way forward."""
    if state.get("data_ok"):
        choices = {"continue": "Continue to training", "fix": "Clean it up (duplicates, validation split)",
                   "upload_more": "Add more examples from a file"}
        text = "Your data is ready to train on."
    elif state.get("too_few"):
        choices = {"upload_more": "Upload more examples"}
        if state.get("llm_ok") and _spec(state).task_type == "generation":
            choices = {"draft_more": "Draft more with me", **choices}
        if state.get("data_examples", 0) > 1:
            choices["anyway"] = "Continue anyway"
        text = ("That is too few examples for a useful model. Add more — or continue anyway to try the steps "
                "(the model will learn little from so few).")
    else:
        choices = {"fix": "Fix what can be fixed", "upload": "Upload a corrected file"}
        text = "These problems would stop training. What would you like to do?"
    return ask(state, text, then="on_checked", stage="check", choices=choices)


def on_checked(state: WizardState) -> Command[Any]:
    """Follow the choice made after the report."""
    picked = state["intent"]["value"]
    if picked == "anyway":
        say("Going on with the examples you have: the run will show every step, but expect little learning.")
        sets = {**(state.get("train_sets") or {}), "min_examples": "1"}
        return go("configure_training", {"train_sets": sets})
    if picked == "draft_more":
        from tools.dataset.readers import read_dataset
        from tools.dataset.store import DatasetStore

        store = DatasetStore(_spec(state).name)
        if not store.examples():
            for ex in read_dataset(state["data_path"]).examples:
                store.add(ex.model_copy(update={"line": None}))
        return go("draft_batch")
    return go({"fix": "fix_data", "upload": "ask_file", "upload_more": "ask_file",
               "continue": "configure_training"}[str(picked)], {"adding": picked == "upload_more"})


async def fix_data(state: WizardState) -> Command[Any]:
    """Clean the current version into a new one (nothing is overwritten) and say what changed."""
    from tools.dataset.store import DatasetStore

    src = Path(state["data_path"])
    store = DatasetStore(_spec(state).name)
    try:
        version, result = await asyncio.to_thread(store.fix, src.name.split(".")[0])
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return go("decide_after_check")
    changes = "\n".join(f"- {c}" for c in result.changes) or "- nothing needed changing"
    say(f"Made a cleaned version `{version.version}` ({result.train_examples} for training, "
        f"{result.validation_examples} held out for validation); your file is kept as it was:\n{changes}")
    return go("check_data", {"data_path": str(result.train_path)})
