"""Author the dataset together: drafts to keep, edit, rewrite, drop or vary; coverage; the dataset table; documents."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Command

from assistant.context import WizardContext
from assistant.conversation import ask, go
from assistant.nodes import TABLE_BACK, Node, routes
from assistant.routing import NO, YES
from assistant.state import WizardState, dataset_of, drafting_of, spec_of
from assistant.ui_events import fenced, inert, progress_event, say, table, thinking
from tools.dataset.model import Example
from tools.dataset.store import DatasetStore
from tools.errors import MTWError
from tools.project import ProjectSpec

DRAFT_BATCH = 5
DRAFT_TURN_S = 55.0
"""One drafting turn ends within this long (a slow answer is cut at it): fewer drafts, never a long wait; "Draft 5
more" asks for the rest."""
MORE_LIKE = 3
"""Drafts asked for by "More like this"."""
SHOWN_ROWS = 100
FIRST_WORDS = 8
SHOW_TABLE = re.compile(r"\b(show|see|list|view|open)\b.*\b(data ?set|examples)\b", re.I)


def wants_table(text: str) -> bool:
    """'show my dataset', 'list the examples': a request to see the dataset as a table."""
    return bool(SHOW_TABLE.search(text))


def can_draft(state: WizardState) -> bool:
    """Drafting needs the assistant model."""
    return bool(state.get("llm_ok"))


def store_of(state: WizardState) -> DatasetStore:
    """The project's one dataset; the file it uses now is taken in first when the store is still empty."""
    from tools.dataset.intake import seed

    return seed(DatasetStore(spec_of(state).name), dataset_of(state).get("data_path"))


def _first_words(text: str, n: int = FIRST_WORDS) -> str:
    words = text.split()
    return " ".join(words[:n]) + (" …" if len(words) > n else "")


def _category(ex: Example) -> str:
    from tools.dataset.coverage import category_name, classify_keywords
    from tools.dataset.spans import bio_spans

    if ex.kind == "classification":
        return str(ex.label)
    if ex.kind == "ner":
        return ", ".join(sorted({t for _, _, t in bio_spans(ex.tags or [])})) or "—"
    key = classify_keywords(ex.prompt())
    return category_name(key) if key else "—"


def _shown(ex: Example) -> str:
    """An example as the chat shows it: each turn (or field) on its own, the role in bold."""
    from tools.dataset.example_text import example_to_text

    if ex.kind != "chat":
        return inert(example_to_text(ex))
    # the words are the row's (or a model's draft): shown as text, never as Markdown that fetches or links
    return "\n\n".join(f"**{m.role.capitalize()}:** {inert(m.content)}" for m in ex.messages)


def coverage(spec: ProjectSpec, examples: list[Example]) -> dict[str, Any]:
    """Show the coverage per category as a table; returns the nudge ({text, label, focus, n}, or {})."""
    from tools.dataset.categories import category_coverage

    cov = category_coverage(examples, spec)
    rows = [[str(r["Category"]), str(r["Examples"]), str(r["Target"]), str(r["Status"])] for r in cov.table()]
    if rows:
        table("Coverage per category", ["Category", "Examples", "Target", "Status"], rows)
    if cov.nudge is None:
        return {}
    ask_part = cov.nudge.text.rsplit(" — ", 1)[-1].rstrip("?")
    return {"text": cov.nudge.text, "label": ask_part[:1].upper() + ask_part[1:], "focus": cov.nudge.focus,
            "n": cov.nudge.n}


def round_focus(areas: list[dict[str, Any]]) -> dict[str, Any]:
    """The next batch of a round: drafts for its first weak area, the rest kept for later."""
    area = areas[0]
    return {"draft_focus": {"label": f"Draft {area['draft']} {area['name'].lower()}", "focus": area["focus"],
                            "n": area["draft"]}, "round_areas": areas[1:]}


# ---------------------------------------------------------------- drafting and review


@routes(Node.review_draft, asks=(Node.on_weak_drafts,))
async def draft_batch(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Ask the assistant model for a few examples from the spec (or for one category); each passed the checks.

    Bounded: the drafts kept so far show as they come, no new call starts after DRAFT_TURN_S, and a new message
    stops it. A model that writes nothing usable is met with what to do: a bigger model to pull, or a file."""
    from assistant.stages.brain import offer_better_model
    from tools.dataset.draft import WeakModel, draft_examples

    spec = spec_of(state)
    focus = drafting_of(state).get("draft_focus") or {}
    n = int(focus.get("n") or DRAFT_BATCH)
    store = await asyncio.to_thread(store_of, state)
    what = str(focus.get("label", "")).removeprefix("Draft ").strip() or f"{n} examples"
    say(f"Drafting {what} from your project — this takes a moment.")
    writer, loop = get_stream_writer(), asyncio.get_running_loop()

    def kept(done: int, total: int) -> None:
        loop.call_soon_threadsafe(writer, progress_event("draft", "Drafting", f"{done} of {total} checked and ready"))

    thinking(True, f"Drafting {what}… (■ stops it; then say what you want instead)")
    llm, deadline = runtime.context.llm, time.monotonic() + DRAFT_TURN_S
    llm.deadline = deadline  # the turn ends on time even in the middle of a slow answer
    try:
        drafts = await asyncio.to_thread(draft_examples, spec, n, llm, existing=store.examples(),
                                         focus=str(focus.get("focus", "")), deadline=deadline, progress=kept)
    except WeakModel as exc:
        return offer_better_model(state, runtime, exc.message)
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        drafts = []
    finally:
        llm.deadline = None
        thinking(False)
    if not drafts:
        return offer_better_model(state, runtime, "No usable drafts came back this time.")
    if len(drafts) < n:
        say(f"{len(drafts)} of the {n} drafts passed the checks — fewer, but each one is checked.")
    return go(Node.review_draft, {"drafts": [d.model_dump() for d in drafts], "draft_index": 0,
                                  "draft_sources": [{} for _ in drafts], "draft_focus": {}})


@routes(Node.after_drafts, asks=(Node.on_review,))
def review_draft(state: WizardState) -> Command[Any]:
    """Show one draft (with its passage when it came from a document): keep, edit, drop, more like it, or rewrite."""
    i, drafts = drafting_of(state).get("draft_index", 0), drafting_of(state).get("drafts", [])
    if i >= len(drafts):
        return go(Node.after_drafts, {"drafts": [], "draft_index": 0, "draft_sources": []})
    ex = Example(**drafts[i])
    source = (drafting_of(state).get("draft_sources") or [{}] * len(drafts))[i] or {}
    grounded = ""
    if source:
        quote = "\n> ".join(inert(line) for line in str(source["text"])[:700].splitlines())
        grounded = f" — written from {inert(str(source['label']))}:\n\n> {quote}\n\n**The draft:**"
    return ask(state, f"Draft {i + 1} of {len(drafts)}{grounded}\n\n{_shown(ex)}\n\n_Or type how to change it "
                      "(“shorter”, “more formal”, “make the persona an admin”) and I'll rewrite it._",
               then=Node.on_review, stage="dataset", free_text=True,
               choices={"keep": "Keep", "edit": "Edit", "drop": "Drop", "more": "More like this"})


@routes(Node.review_draft, Node.edit_example, Node.show_dataset, Node.listen)
async def on_review(state: WizardState, runtime: Runtime[WizardContext]) -> Command[Any]:
    """Keep (into the project's dataset at once), edit, drop, more like this; other words are a rewrite instruction."""
    from tools.dataset.draft import more_like_this, rewrite

    i, drafts = drafting_of(state).get("draft_index", 0), list(drafting_of(state).get("drafts", []))
    sources = list(drafting_of(state).get("draft_sources") or [{}] * len(drafts))
    ex = Example(**drafts[i])
    value = str(state["intent"].get("value") or "").strip()
    norm = value.lower().strip(" .!")
    value = "keep" if norm in YES else "drop" if norm in NO else value
    if value == "keep":
        await asyncio.to_thread(lambda: store_of(state).add(ex))
        return go(Node.review_draft, {"draft_index": i + 1})
    if value == "drop":
        return go(Node.review_draft, {"draft_index": i + 1})
    if value == "edit":
        return go(Node.edit_example, {"editing": {"id": "", "draft": i}})
    if wants_table(value):
        return go(Node.show_dataset, {"table_back": Node.review_draft.value})
    spec, llm = spec_of(state), runtime.context.llm
    if not can_draft(state):
        say("Rewriting needs the assistant model, which is not answering right now. Click **Edit** to change it "
            "yourself, or keep or drop it.")
        return go(Node.listen)
    store = await asyncio.to_thread(store_of, state)
    existing = [*store.examples(), *(Example(**d) for d in drafts)]
    thinking(True, ("Drafting more like it…" if value == "more" else "Rewriting it…")
             + " (■ stops it; then say what you want instead)")
    llm.deadline = time.monotonic() + DRAFT_TURN_S
    try:
        if value == "more":
            more = await asyncio.to_thread(more_like_this, ex, MORE_LIKE, spec, llm, existing=existing)
        else:
            changed = await asyncio.to_thread(rewrite, ex, value, spec, llm, existing=existing)
    except MTWError as exc:
        say(f"{exc.message} {exc.fix}")
        return go(Node.listen)
    finally:
        llm.deadline = None
        thinking(False)
    if value == "more":
        await asyncio.to_thread(store.add, ex)
        say(f"Kept it, and drafted {len(more)} more like it — they come next." if more
            else "Kept it; no new drafts like it passed the checks this time.")
        return go(Node.review_draft, {"draft_index": i + 1,
                                      "drafts": [*drafts[:i + 1], *(m.model_dump() for m in more), *drafts[i + 1:]],
                                      "draft_sources": [*sources[:i + 1], *({} for _ in more), *sources[i + 1:]]})
    drafts[i] = changed.model_dump()
    say(f"Rewritten as you asked (“{value}”). Keep it, drop it, or say what else to change:")
    return go(Node.review_draft, {"drafts": drafts})


@routes(asks=(Node.on_edit_example,))
def edit_example(state: WizardState) -> Command[Any]:
    """Show the example as editable text; the user's next message is the edited example."""
    from tools.dataset.example_text import example_to_text

    editing = drafting_of(state).get("editing") or {}
    if editing.get("id"):
        ex = store_of(state).get(str(editing["id"]))
    else:
        ex = Example(**drafting_of(state)["drafts"][int(editing.get("draft", 0))])
    text = example_to_text(ex)
    labels = "`User:` and `Assistant:`" if ex.kind == "chat" else "`Text:` and `Label:`" if \
        ex.kind == "classification" else "`Text:` and `Entities:`"
    return ask(state, f"Copy this, change what you like and send it back as your message (keep the {labels} "
                      f"labels):\n\n{fenced(text)}", then=Node.on_edit_example, stage="dataset", free_text=True,
               choices={"cancel": "Cancel editing"}, verbatim=True)


@routes(Node.review_draft, Node.show_dataset, Node.listen)
def on_edit_example(state: WizardState) -> Command[Any]:
    """Check the edited text; keep it (a draft goes into the dataset, a table row is replaced) or say what is wrong."""
    from tools.dataset.example_text import parse_example_text

    editing = drafting_of(state).get("editing") or {}
    back = Node.show_dataset if editing.get("id") else Node.review_draft
    value = str(state["intent"].get("value") or "")
    if value == "cancel":
        return go(back, {"editing": {}})
    store = store_of(state)
    before = store.get(str(editing["id"])) if editing.get("id") else Example(
        **drafting_of(state)["drafts"][int(editing.get("draft", 0))])
    try:
        edited = parse_example_text(value, before.kind)
    except MTWError as exc:
        say(f"{exc.message} **Fix:** {exc.fix} Send the corrected example again (or click **Cancel editing**).")
        return go(Node.listen)
    if editing.get("id"):
        store.edit(str(editing["id"]), edited)
        version = store.save(note="edited in the chat")
        say("Saved your edit as a new version of the dataset.")
        return go(Node.show_dataset, {"editing": {}, "data_path": str(version.path), "data_ok": False})
    store.add(edited)
    say("Kept your edited version.")
    return go(Node.review_draft, {"editing": {}, "draft_index": int(editing.get("draft", 0)) + 1})


@routes(asks=(Node.on_after_drafts,))
def after_drafts(state: WizardState) -> Command[Any]:
    """Coverage per category after each batch, with the nudge as a choice; draft more, upload, see or check."""
    spec = spec_of(state)
    examples = store_of(state).examples()
    nudge = coverage(spec, examples)
    choices: dict[str, str] = {}
    if nudge and can_draft(state):
        choices["nudge"] = nudge["label"]
    doc = dataset_of(state).get("document") or {}
    if doc and doc.get("next", 0) < doc.get("passages", 0) and can_draft(state):
        choices["doc_more"] = f"Draft more from {doc['name']}"
    areas = drafting_of(state).get("round_areas") or []
    if areas and can_draft(state):
        choices["round"] = f"Draft {areas[0]['draft']} {areas[0]['name'].lower()} (next weak area)"
    if can_draft(state):
        choices["more"] = f"Draft {DRAFT_BATCH} more"
    choices["upload"] = "Upload a file"
    if examples:
        choices["table"] = "Show my dataset"
        choices["check"] = "Check my examples"
    n = len(examples)
    text = f"You have **{n} example{'s' * (n != 1)}** so far." + (f" {nudge['text']}" if nudge else "")
    return ask(state, text, then=Node.on_after_drafts, stage="dataset", choices=choices, update={"nudge": nudge})


@routes(Node.check_data, Node.draft_batch, Node.draft_document, Node.ask_file, Node.show_dataset)
def on_after_drafts(state: WizardState) -> Command[Any]:
    """Draft (more, for the thin category, from the document), upload, see the table, or save and check."""
    picked = state["intent"]["value"]
    if picked == "nudge":
        return go(Node.draft_batch, {"draft_focus": drafting_of(state).get("nudge") or {}})
    if picked == "more":
        return go(Node.draft_batch, {"draft_focus": {}})
    if picked == "doc_more":
        return go(Node.draft_document)
    if picked == "round":
        return go(Node.draft_batch, round_focus(drafting_of(state).get("round_areas") or []))
    if picked == "upload":
        return go(Node.ask_file, {"adding": True})
    if picked == "table":
        return go(Node.show_dataset, {"table_back": Node.after_drafts.value})
    version = store_of(state).save(note="drafted in the chat")
    return go(Node.check_data, {"data_path": str(version.path)})


# ---------------------------------------------------------------- the dataset as a table


@routes(*TABLE_BACK, asks=(Node.on_table,))
def show_dataset(state: WizardState) -> Command[Any]:
    """The current dataset as a table (number, category, first words of each side); open one by its number."""
    items = store_of(state).items()
    if not items:
        say("Your dataset has no examples yet.")
        return go(Node(dataset_of(state).get("table_back") or Node.after_drafts))
    rows = []
    for n, (_, ex) in enumerate(items[:SHOWN_ROWS], start=1):
        first = ex.prompt() if ex.kind == "chat" else ex.text
        second = ex.answer() if ex.kind == "chat" else _category(ex)
        rows.append([str(n), _category(ex), _first_words(first), _first_words(second)])
    more = f" (the first {SHOWN_ROWS} shown)" if len(items) > SHOWN_ROWS else ""
    table(f"Your dataset: {len(items)} examples{more}", ["#", "Category", "Request", "Answer"], rows)
    return ask(state, "Type the number of an example to open it (to edit or remove it), or go on.",
               then=Node.on_table, stage="dataset", free_text=True, choices={"back": "Go on"})


@routes(*TABLE_BACK, Node.listen, asks=(Node.on_open,))
def on_table(state: WizardState) -> Command[Any]:
    """Open the example whose number was typed, or go back to where the table was asked for."""
    value = str(state["intent"].get("value") or "").strip()
    if value == "back":
        return go(Node(dataset_of(state).get("table_back") or Node.after_drafts))
    items = store_of(state).items()
    m = re.search(r"\d+", value)
    if not m or not 1 <= int(m.group()) <= len(items):
        say(f"Type a number from 1 to {len(items)} to open that example, or click **Go on**.")
        return go(Node.listen)
    example_id, ex = items[int(m.group()) - 1]
    return ask(state, f"Example {m.group()}:\n\n{_shown(ex)}", then=Node.on_open, stage="dataset",
               choices={"edit": "Edit", "remove": "Remove", "back": "Back to the table"}, effects=("remove",),
               update={"opened": example_id})


@routes(Node.show_dataset, Node.edit_example)
def on_open(state: WizardState) -> Command[Any]:
    """Edit or remove the opened example (the change is saved as a new version), or back to the table."""
    picked = state["intent"]["value"]
    example_id = str(dataset_of(state).get("opened", ""))
    if picked == "edit":
        return go(Node.edit_example, {"editing": {"id": example_id}})
    if picked == "remove":
        store = store_of(state)
        store.delete(example_id)
        version = store.save(note="removed an example in the chat")
        say(f"Removed it. Your dataset has {len(store.examples())} examples now (saved as a new version).")
        return go(Node.show_dataset, {"data_path": str(version.path), "data_ok": False})
    return go(Node.show_dataset)
