"""What the graph shows the user: a small typed union of UI events, emitted from nodes and rendered by render.py.

Nodes never touch Chainlit. They emit these events on LangGraph's custom stream (`say`, `table`, `figure`,
`progress`, `stage`, `thinking`) and ask through an interrupt whose payload is a `Question`. The chat renders both;
the graph tests read the very same events.
"""

# no `from __future__ import annotations` here: which keys of a Question are Required is read at run time
import re
from typing import Any, Literal, NotRequired, Required, TypedDict

from langgraph.config import get_stream_writer

StageName = Literal["onboard", "interview", "dataset", "check", "configure", "train", "evaluate", "deploy"]
STAGES: dict[str, str] = {
    "onboard": "Check your machine",
    "interview": "Describe your model",
    "dataset": "Build the dataset",
    "check": "Check the dataset",
    "configure": "Configure training",
    "train": "Train",
    "evaluate": "Evaluate",
    "deploy": "Deploy to Ollama",
}
"""The journey's stages in order, with the titles of the Tasks panel."""
QUICK_SKIPS = ("dataset", "check", "configure", "train", "evaluate")
"""The stages the quick path (a styled model without training) goes past: nothing was built, checked or trained."""


class _Asked(TypedDict, total=False):
    """What every question the wizard asks carries (the interrupt payload); answered by a click, a typed message or a
    file. `Question` is the union of the four kinds, told apart by `kind`."""

    id: Required[int]
    """Grows with every question; a click carries it, so a click on an older question's button is ignored."""
    text: Required[str]
    then: Required[str]
    """The node that handles the answer."""
    stage: Required[str]
    """The journey stage the question belongs to."""
    choices: Required[dict[str, str]]
    """Button value -> label; a typed message may name a label, or say it in other words."""
    free_text: bool
    """A typed message is the answer itself (interview questions), unless it is a question or a command."""
    verbatim: bool
    """Typed text is the answer as it stands, even when it reads like a question (a prompt to try, an edit)."""
    optional: bool
    """A Skip button is added; skipping answers with an empty value."""
    skipped: list[str]
    """Earlier stages the path to this question did not go through (not ticked as done in the Tasks panel)."""
    finished: bool
    """The question's stage is complete too (the model is in Ollama): ticked in the Tasks panel, not running."""
    slot: str
    """The spec slot asked about (interview questions) or a name for the choice."""
    effects: list[str]
    """Choices that start something (training, export, download, delete): a typed message only suggests them."""
    aliases: dict[str, str]
    """What people type for a choice besides its key and label ("q8" for q8_0)."""


class AskQuestion(_Asked):
    """A question answered by a click or in words."""

    kind: Required[Literal["question"]]


class ConfirmQuestion(_Asked):
    """The project's spec shown for a yes, or for the change to make."""

    kind: Required[Literal["confirm"]]
    spec_md: Required[str]
    """The spec as Markdown, shown under the question."""


class FileQuestion(_Asked):
    """A question a file answers (the paperclip), or one of its buttons."""

    kind: Required[Literal["file"]]
    accept: list[str]
    """The file types offered in the picker."""


class TrainingQuestion(_Asked):
    """A run in progress: its live view shows the question, with the Stop button; the run's end answers it."""

    kind: Required[Literal["training"]]
    run_dir: Required[str]
    since: Required[int]
    """The byte offset in events.jsonl where this attempt of the run begins."""


Question = AskQuestion | ConfirmQuestion | FileQuestion | TrainingQuestion
"""What the wizard is asking now, by kind."""


class Say(TypedDict):
    """A chat message (Markdown)."""

    ui: Literal["say"]
    text: str


class Table(TypedDict):
    """A small table: a header row and rows of cells (Markdown)."""

    ui: Literal["table"]
    title: str
    columns: list[str]
    rows: list[list[str]]


class Figure(TypedDict):
    """A Plotly figure as JSON."""

    ui: Literal["figure"]
    name: str
    json: str


class Progress(TypedDict):
    """A progress line, updated in place while `key` stays the same."""

    ui: Literal["progress"]
    key: str
    title: str
    status: str
    completed: int
    total: int


class Stage(TypedDict):
    """The journey moved to a stage (the Tasks panel follows)."""

    ui: Literal["stage"]
    stage: str
    skipped: NotRequired[list[str]]
    """Earlier stages this path did not go through (the quick path skips training): not ticked as done."""
    finished: NotRequired[bool]
    """This stage is complete too (the model is in Ollama): ticked, not shown as running."""


class Title(TypedDict):
    """A name for the conversation (the sidebar shows it)."""

    ui: Literal["title"]
    text: str


class Thinking(TypedDict):
    """The assistant model is working on an answer (`on`), or has finished (`on` false): a passing note in the chat
    that the ■ button (or a new message) ends the wait."""

    ui: Literal["thinking"]
    on: bool
    text: str


UIEvent = Say | Table | Figure | Progress | Stage | Title | Thinking


def emit(event: UIEvent) -> None:
    """Send one UI event from inside a node."""
    get_stream_writer()(dict(event))


def say(text: str) -> None:
    """A chat message (Markdown)."""
    emit(Say(ui="say", text=text))


def thinking(on: bool, text: str = "") -> None:
    """Show (or take away) the note that the assistant model is working on an answer."""
    emit(Thinking(ui="thinking", on=on, text=text))


def stage(name: str, skipped: tuple[str, ...] = (), finished: bool = False) -> None:
    """Mark the journey stage as the current one (SKIPPED: earlier stages this path did not go through; FINISHED:
    this one is complete too)."""
    emit(Stage(ui="stage", stage=name, skipped=list(skipped), finished=finished))


def title(text: str) -> None:
    """Name the conversation."""
    emit(Title(ui="title", text=text))


def table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A small table."""
    emit(Table(ui="table", title=title, columns=columns, rows=rows))


_MARKUP = re.compile(r"([\\`*_\[\]<>!&~|])")
"""Marks that make Markdown anywhere in a line: emphasis, code, links and images, HTML, entities, tables."""
_LINE_MARKUP = re.compile(r"^([ \t]*)([#+=-]|\d+(?=[.)]))", re.M)
"""What makes a heading, a list or a rule only at the start of a line."""
# what the chat would turn into a link even with every mark escaped (GFM links bare URLs and e-mail addresses)
_LINK_LIKE = re.compile(r"(?:https?://|www\.)[^\s|`<>]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.I)


def _escaped(text: str) -> str:
    text = _MARKUP.sub(r"\\\1", text)
    return _LINE_MARKUP.sub(lambda m: m.group(1) + (m.group(2) + "\\" if m.group(2)[0].isdigit()
                                                    else "\\" + m.group(2)), text)


def inert(text: str) -> str:
    """TEXT (from a data row, a document or a model) as Markdown that shows it as it is: every mark that would
    format it escaped, so no image is fetched, no link or HTML made and no formatting applied (`![x](http://…)` is
    shown, never requested); addresses a browser would link are shown as code."""
    out, at = [], 0
    for m in _LINK_LIKE.finditer(text):
        link = m.group().rstrip(").,;:!?'\"]}")  # the closing mark of a sentence or a bracket is not the address's
        out += [_escaped(text[at:m.start()]), f"`{link}`"]
        at = m.start() + len(link)
    return "".join([*out, _escaped(text[at:])])


def fenced(text: str, info: str = "text") -> str:
    """TEXT in a code block it cannot close: the fence is longer than any run of backticks inside."""
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return f"{fence}{info}\n{text}\n{fence}"


CELL_CHARS = 600
"""A table cell longer than this is cut with "…": a page of one model's answer would push the other columns away."""


def table_markdown(ev: Table) -> str:
    """A table event as Markdown: every cell shown as text (cells hold rows' and models' words), long ones cut (the
    stylesheet `ui/public/mtw.css` wraps long runs without spaces inside their cells)."""

    def cell(value: Any) -> str:
        text = " ".join(str(value).split())
        if len(text) > CELL_CHARS:
            text = text[: CELL_CHARS - 1].rstrip() + "…"
        return inert(text)

    lines = [f"**{ev['title']}**", "", "| " + " | ".join(ev["columns"]) + " |", "|" + "---|" * len(ev["columns"])]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in ev["rows"]]
    return "\n".join(lines)


def figure(name: str, figure_json: str) -> None:
    """A Plotly figure."""
    emit(Figure(ui="figure", name=name, json=figure_json))


def progress_event(key: str, title: str, status: str, completed: int = 0, total: int = 0) -> Progress:
    """A progress event (for handing to the stream writer from a worker thread)."""
    return Progress(ui="progress", key=key, title=title, status=status, completed=completed, total=total)


def stage_index(name: str) -> int:
    """The position of a stage in the journey."""
    return list(STAGES).index(name)


def is_ui_event(chunk: Any) -> bool:
    """True for a custom-stream chunk that is one of the events above."""
    return isinstance(chunk, dict) and chunk.get("ui") in ("say", "table", "figure", "progress", "stage", "title",
                                                           "thinking")
