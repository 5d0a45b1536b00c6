"""Build and check the dataset: upload, sample or drafts; the plain report; fixes; never a dead end."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path
from typing import Any

from langgraph.types import Command

from assistant.conversation import ask, go
from assistant.nodes import Node, routes
from assistant.state import WizardState, dataset_of, deploy_of, drafting_of, spec_of, train_of
from assistant.ui_events import inert, say, stage
from tools.dataset.sniff import DATASET_SUFFIXES
from tools.errors import MTWError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAMPLES = {"classification": EXAMPLES / "pm_task_types.jsonl", "generation": EXAMPLES / "pm_dataset.jsonl"}
ACCEPT = list(DATASET_SUFFIXES)
SHOWN_ISSUES = 8


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@routes(Node.show_dataset, asks=(Node.on_data_choice,))
def choose_data(state: WizardState) -> Command[Any]:
    """Ask where the training examples come from: a file, drafts, documents or the sample set; or show the dataset."""
    from assistant.stages.author import can_draft, wants_table

    stage("dataset")
    intent = state.get("intent") or {}
    if intent.get("kind") == "navigate" and wants_table(str(intent.get("text", ""))):
        return go(Node.show_dataset, {"table_back": Node.choose_data.value, "intent": {}})
    spec = spec_of(state)
    choices = {"upload": "Upload a file of examples"}
    if can_draft(state):
        choices["draft"] = "Draft examples with me"
        if spec.task_type in (None, "generation"):
            choices["documents"] = "Draft from my documents"
    if spec.task_type in SAMPLES:
        choices["sample"] = "Start from the sample PM dataset"
    if dataset_of(state).get("data_path"):
        choices["keep"] = keep_label(spec.name, Path(dataset_of(state)["data_path"]))
        choices["table"] = "Show my dataset"
    elif spec.task_type in (None, "generation") and not deploy_of(state).get("quick_made"):
        choices["quick"] = "Make a styled model without training (about a minute)"
    return ask(state, "**Now your training examples.** 50–100 good examples is a solid first round (10 is the "
                      "minimum). Where should they come from?", then=Node.on_data_choice, stage="dataset",
               choices=choices, effects=("quick",))


def keep_label(project: str, path: Path) -> str:
    """The button that keeps the dataset the project has: its size and the name the user gave its file, never the
    version's hash."""
    from tools.dataset.store import DatasetStore

    version = next((v for v in DatasetStore(project).versions() if v.path.name == path.name), None)
    if version is None:
        return f"Keep {path.name}"
    origin = version.source.removeprefix("upload:") if version.source.startswith("upload:") else ""
    return f"Keep my dataset ({_plural(version.examples, 'example')}" + (f", from {origin})" if origin else ")")


def current_dataset(project: str) -> str:
    """The file of the dataset version a saved project works with now, or "" when it has none."""
    from tools.dataset.store import DatasetStore

    version = DatasetStore(project).current()
    return str(version.path) if version is not None else ""


@routes(Node.ask_file, Node.use_sample, Node.draft_batch, Node.check_data, Node.ask_document, Node.show_dataset,
        Node.quick_model)
def on_data_choice(state: WizardState) -> Command[Any]:
    """Follow the choice."""
    picked = str(state["intent"]["value"])
    return go({"upload": Node.ask_file, "sample": Node.use_sample, "draft": Node.draft_batch, "keep": Node.check_data,
               "documents": Node.ask_document, "table": Node.show_dataset, "quick": Node.quick_model}[picked],
              {"adding": False, "table_back": Node.choose_data.value, "draft_focus": {}})


@routes(asks=(Node.receive_file,))
def ask_file(state: WizardState) -> Command[Any]:
    """Ask for a file: attached to a message (the paperclip) or dropped on the chat; the chat stays free."""
    adding = dataset_of(state).get("adding")
    text = ("Attach the file with more examples" if adding else "Attach your examples file") + \
        " with the 📎 paperclip below (or drop it on the chat) and send — JSONL, JSON, CSV or TSV."
    return ask(state, text, then=Node.receive_file, stage="dataset", kind="file", accept=ACCEPT,
               choices={"back": "Choose another way"})


@routes(Node.check_data, Node.choose_data, Node.listen)
async def receive_file(state: WizardState) -> Command[Any]:
    """Take an uploaded file into the project as its own version (nothing is overwritten), then check it."""
    from tools.dataset.intake import UploadRefused, take_upload

    intent = state["intent"]
    if intent.get("kind") != "file":
        return go(Node.choose_data)
    upload = intent["value"]
    src, name = Path(upload["path"]), Path(str(upload.get("name") or "upload")).name
    data = dataset_of(state)
    try:
        taken = await asyncio.to_thread(take_upload, spec_of(state).name, src, name,
                                        "add" if data.get("adding") else "new", data.get("data_path") or None)
    except UploadRefused as exc:
        say(exc.words(f"**{name}**"))
        return go(Node.listen)
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return go(Node.listen)
    if taken.added == 0:
        say(f"Every example in **{name}** is in your dataset already, so nothing was added.")
    elif taken.added is not None:
        already = taken.already
        say(f"Added {_plural(taken.added, 'new example')} from **{name}** to your dataset"
            + (f" ({_plural(already, 'example')} of it {'was' if already == 1 else 'were'} in it already, "
               "so I left them out)." if already else "."))
    return go(Node.check_data, {"data_path": str(taken.version.path), "adding": False})


@routes(Node.check_data)
def use_sample(state: WizardState) -> Command[Any]:
    """Copy the sample dataset into the project so the user can try the whole journey."""
    from tools.dataset.store import DatasetStore

    src = SAMPLES[spec_of(state).task_type or "generation"]
    dest = DatasetStore(spec_of(state).name).import_file(src, name=src.name).path
    say(f"Copied the sample dataset to `{dest}`.")
    return go(Node.check_data, {"data_path": str(dest)})


@routes(Node.decide_after_check)
async def check_data(state: WizardState) -> Command[Any]:
    """The plain-language report: a summary first, then each problem with its line and fix; then what next."""
    from tools.dataset.store import checked

    stage("check")
    path = dataset_of(state)["data_path"]
    try:
        report = await asyncio.to_thread(checked, path)
    except MTWError as exc:
        say(f"I could not read `{Path(path).name}`: {exc.message} {exc.fix}")
        return go(Node.decide_after_check, {"data_ok": False, "data_errors": 1, "too_few": False})
    errors = [i for i in report.issues if i.severity == "error"]
    warnings = [i for i in report.issues if i.severity == "warning"]
    lines = [f"**{_plural(report.examples, 'example')}** ({report.format}) — {_plural(len(errors), 'problem')} "
             f"to fix, {_plural(len(warnings), 'suggestion')}."]
    for issue in (errors + warnings)[:SHOWN_ISSUES]:
        where = f"line {issue.line}: " if issue.line else ""
        message = inert(issue.message)  # it may quote the row's own words
        if issue.line and message.lower().startswith(f"line {issue.line}"):
            where = ""  # the message names its line already
        mark = "❌" if issue.severity == "error" else "⚠️"
        lines.append(f"- {mark} {where}{message} **Fix:** {issue.fix}")
    if len(errors) + len(warnings) > SHOWN_ISSUES:
        lines.append(f"- … and {len(errors) + len(warnings) - SHOWN_ISSUES} more "
                     f"(`{shlex.join(['mtw', 'check', str(path)])}` lists all).")
    say("\n".join(lines))
    nudge: dict[str, Any] = {}
    if report.examples:
        from assistant.stages.author import coverage
        from tools.dataset.parsed import rows_of

        examples = await asyncio.to_thread(rows_of, path)
        nudge = coverage(spec_of(state), examples)
    too_few = bool(errors) and all(i.code == "too_few_examples" for i in errors)
    return go(Node.decide_after_check, {"data_ok": report.ok, "data_errors": len(errors), "too_few": too_few,
                                        "data_examples": report.examples, "nudge": nudge})


@routes(asks=(Node.on_checked,))
def decide_after_check(state: WizardState) -> Command[Any]:
    """Fix, add or upload, or go on: every outcome of the check has a way forward (and the coverage nudge)."""
    from assistant.stages.author import can_draft

    nudge = drafting_of(state).get("nudge") or {}
    if dataset_of(state).get("data_ok"):
        choices = {"continue": "Continue to training", "fix": "Clean it up (duplicates, validation split)",
                   "upload_more": "Add more examples from a file"}
        text = "Your data is ready to train on."
    elif dataset_of(state).get("too_few"):
        choices = {"upload_more": "Upload more examples"}
        if can_draft(state):
            choices = {"draft_more": "Draft more with me", **choices}
        if dataset_of(state).get("data_examples", 0) > 1:
            choices["anyway"] = "Continue anyway"
        text = ("That is too few examples for a useful model. Add more — or continue anyway to try the steps "
                "(the model will learn little from so few).")
    else:
        choices = {"fix": "Fix what can be fixed", "upload": "Upload a corrected file"}
        text = "These problems would stop training. What would you like to do?"
    if (nudge and can_draft(state)
            and dataset_of(state).get("data_errors", 0) == int(bool(dataset_of(state).get("too_few")))):
        choices = {"nudge": str(nudge["label"]), **choices}
        text = f"{text}\n\nCoverage: {nudge['text']}"
    return ask(state, text, then=Node.on_checked, stage="check", choices=choices)


@routes(Node.fix_data, Node.ask_file, Node.configure_training, Node.draft_batch)
def on_checked(state: WizardState) -> Command[Any]:
    """Follow the choice made after the report."""
    picked = state["intent"]["value"]
    if picked == "anyway":
        say("Going on with the examples you have: the run will show every step, but expect little learning.")
        sets = {**(train_of(state).get("train_sets") or {}), "min_examples": "1"}
        return go(Node.configure_training, {"train_sets": sets})
    if picked in ("draft_more", "nudge"):
        return go(Node.draft_batch,
                  {"draft_focus": (drafting_of(state).get("nudge") or {}) if picked == "nudge" else {}})
    return go({"fix": Node.fix_data, "upload": Node.ask_file, "upload_more": Node.ask_file,
               "continue": Node.configure_training}[str(picked)], {"adding": picked == "upload_more"})


@routes(Node.check_data, Node.decide_after_check)
async def fix_data(state: WizardState) -> Command[Any]:
    """Clean the current version into a new one (nothing is overwritten) and say what changed."""
    from tools.dataset.store import DatasetStore

    src = Path(dataset_of(state)["data_path"])
    store = DatasetStore(spec_of(state).name)
    try:
        version, result = await asyncio.to_thread(store.fix, src.name.split(".")[0])
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return go(Node.decide_after_check)
    changes = "\n".join(f"- {c}" for c in result.changes) or "- nothing needed changing"
    say(f"Made a cleaned version `{version.version}` ({result.train_examples} for training, "
        f"{result.validation_examples} held out for validation); your file is kept as it was:\n{changes}")
    return go(Node.check_data, {"data_path": str(result.train_path)})
