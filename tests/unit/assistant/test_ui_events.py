"""What the chat shows of the graph's events and questions, and what its buttons send back.

The page is played by a double of chainlit's message API (messages as the user sees them: text, buttons, charts);
the questions are the wizard's own, and a click is answered by the wizard's graph.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from assistant import render
from assistant.ui_events import CELL_CHARS, STAGES, Table, table_markdown
from tests.unit.assistant.helpers import ScriptedLLM, Session
from tests.unit.assistant.test_conversation import to_data_choice


class Page:
    """The chat page, as a double of chainlit: every message shown, in order, with its buttons and charts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.session: dict[str, Any] = {}
        self.titles: list[str] = []
        self.tasks: list[Any] = []

    def texts(self) -> list[str]:
        return [m.content for m in self.messages]

    def buttons(self) -> list[tuple[str, dict[str, Any]]]:
        return [(a.label, a.payload) for m in self.messages for a in m.actions]


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Page:
    shown = Page()

    class Message:
        def __init__(self, content: str = "", actions: list[Any] | None = None, metadata: dict[str, Any] | None = None,
                     elements: list[Any] | None = None, **_: Any) -> None:
            self.content, self.actions = content, list(actions or [])
            self.metadata, self.elements = dict(metadata or {}), list(elements or [])
            self.buttons_when_sent: list[tuple[str, dict[str, Any]]] = []

        async def send(self) -> None:
            self.buttons_when_sent = [(a.label, a.payload) for a in self.actions]
            shown.messages.append(self)

        async def update(self) -> None:
            assert self in shown.messages, "updated a message that is not on the page"

        async def remove(self) -> None:
            shown.messages.remove(self)

        async def remove_actions(self) -> None:
            self.actions = []

    class Element:
        def __init__(self, name: str, figure: Any = None, display: str = "", **_: Any) -> None:
            self.name, self.figure = name, figure

        async def remove(self) -> None:
            pass

    class TaskList:
        def __init__(self, status: str = "") -> None:
            self.tasks: list[Any] = []

        async def add_task(self, task: Any) -> None:
            self.tasks.append(task)

        async def send(self) -> None:
            shown.tasks = [(t.title, t.status) for t in self.tasks]

    session = SimpleNamespace(get=lambda k, d=None: shown.session.get(k, d),
                              set=lambda k, v: shown.session.__setitem__(k, v))

    async def init_thread(name: str) -> None:
        shown.titles.append(name)

    double = SimpleNamespace(
        Message=Message, Action=lambda name, payload, label: SimpleNamespace(name=name, payload=payload, label=label),
        Plotly=Element, TaskList=TaskList, Task=lambda title, status: SimpleNamespace(title=title, status=status),
        TaskStatus=SimpleNamespace(READY="ready", RUNNING="running", DONE="done"), user_session=session,
        context=SimpleNamespace(emitter=SimpleNamespace(init_thread=init_thread)))
    monkeypatch.setattr(render, "cl", double)
    return shown


async def test_a_question_shows_its_text_and_choices_and_a_click_on_one_answers_it(page: Page):
    s = Session(ScriptedLLM(ok=False))
    q = await to_data_choice(s)
    await render.question(q)
    assert page.texts()[-1] == q["text"]
    assert [label for label, _ in page.buttons()] == list(q["choices"].values())
    label, payload = next(b for b in page.buttons() if b[1]["value"] == "sample")
    reply = render.click_reply(payload)
    assert reply == {"qid": q["id"], "value": "sample", "label": label}
    after = await s.send(reply)
    assert after is not None
    assert after["then"] == "on_checked"  # the sample dataset was taken and checked


async def test_an_optional_question_has_a_skip_button_that_skips_it(page: Page):
    s = Session(ScriptedLLM(ok=False))
    q = await s.send()
    answers = {"purpose": "Weekly status updates", "task_type": "generation", "audience": "execs",
               "house_style": "formal"}
    while q is not None and q["slot"] in answers:
        q = await s.send(answers[q["slot"]])
    assert q is not None
    assert q["slot"] == "samples"
    await render.question(q)
    label, payload = page.buttons()[-1]
    assert label == "Skip"
    after = await s.send(render.click_reply(payload))
    assert after is not None
    assert after["slot"] == "never_do"
    assert (await s.state())["spec"].get("samples", []) == []


async def test_a_new_question_takes_the_buttons_from_the_one_before_which_keeps_its_words(page: Page):
    await render.question({"id": 1, "kind": "question", "text": "First?", "choices": {"a": "A"}})
    await render.question({"id": 2, "kind": "confirm", "text": "Here is your project",
                           "choices": {"confirm": "Looks right"}, "spec_md": "- **Audience:** engineers"})
    first, second = page.messages
    assert (first.content, first.actions) == ("First?", [])
    assert second.content == "Here is your project\n\n- **Audience:** engineers"
    assert page.buttons() == [("Looks right", {"qid": 2, "value": "confirm", "label": "Looks right"})]


async def test_the_stage_of_a_question_moves_the_tasks_panel_and_skipped_stages_stay_unticked(page: Page):
    await render.question({"id": 3, "kind": "question", "text": "Ship it?", "choices": {}, "stage": "deploy",
                           "skipped": ["evaluate"]})
    status = dict(page.tasks)
    assert status[STAGES["onboard"]] == status[STAGES["train"]] == "done"
    assert status[STAGES["evaluate"]] == "ready"
    assert status[STAGES["deploy"]] == "running"


async def test_said_text_tables_progress_titles_and_the_thinking_note_show_as_the_user_reads_them(page: Page):
    await render.shown({"ui": "say", "text": "**Plan:** LoRA"})
    await render.shown({"ui": "table", "title": "Your dataset", "columns": ["Prompt", "Answer"],
                        "rows": [["a | b", "![x](http://example.com/x.png)"]]})
    for done in (0, 50):
        await render.shown({"ui": "progress", "key": "pull", "title": "Downloading", "status": "phi4-mini",
                            "completed": done, "total": 100})
    await render.shown({"ui": "title", "text": "Weekly status updates"})
    await render.shown({"ui": "thinking", "on": True, "text": "Thinking about your message…"})
    assert page.texts()[-1] == "_Thinking about your message…_"
    await render.shown({"ui": "thinking", "on": False, "text": ""})
    said, table, bar = page.texts()  # the progress line is one message, updated in place; the note has gone
    assert said == "**Plan:** LoRA"
    assert table.splitlines()[:4] == ["**Your dataset**", "", "| Prompt | Answer |", "|---|---|"]
    assert table.splitlines()[4] == "| a \\| b | \\!\\[x\\](`http://example.com/x.png`) |"  # shown, never fetched
    assert bar == "Downloading: phi4-mini `██████████░░░░░░░░░░` 50% of 100 B"
    assert page.titles == ["Weekly status updates"]


def _run(folder: Path, events: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True)
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return folder


async def test_a_training_question_is_its_run_shown_live_with_a_stop_button_until_it_ends(page: Page, tmp_path: Path):
    run = _run(tmp_path / "run", [
        {"type": "start", "total_steps": 2}, {"type": "step", "step": 1, "loss": 2.5},
        {"type": "diagnosis", "message": "The loss is not falling.", "fix_text": "Use learning rate 1e-4."},
        {"type": "step", "step": 2, "loss": 1.25}, {"type": "done"}])
    q = {"id": 7, "kind": "training", "text": "Training is running.", "choices": {"stop": "Stop"},
         "run_dir": str(run), "since": 0}
    await render.question(q)
    assert page.messages == []  # no question message: the live view is the question
    await render.live_view(q)
    line, note, chart = page.messages
    [(label, payload)] = line.buttons_when_sent
    assert label == "Stop"
    assert render.click_reply(payload) == {"qid": 7, "value": "stop", "label": "Stop"}  # answers the training question
    assert line.content == "Training done at step 2, loss 1.250."
    assert line.actions == []  # the run is over: nothing left to stop
    assert note.content == "⚠️ The loss is not falling.\n\n**Fix:** Use learning rate 1e-4."
    assert chart.content == "Loss (training and validation):"
    assert [e.name for e in chart.elements] == ["loss"]
    assert list(chart.elements[0].figure.data[0].y) == [2.5, 1.25]


def rows_of(markdown: str) -> list[list[str]]:
    body = markdown.split("\n")[4:]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in body]


def test_a_long_answer_is_cut_so_the_other_columns_stay_in_view() -> None:
    answer = "As a shopper I want to track my order " * 40
    md = table_markdown(Table(ui="table", title="Compare", columns=["Prompt", "Tuned", "Winner"],
                              rows=[["Write a story", answer, "tuned"]]))
    [[prompt, tuned, winner]] = rows_of(md)
    assert prompt == "Write a story"
    assert winner == "tuned"
    assert CELL_CHARS - 2 <= len(tuned) <= CELL_CHARS
    assert tuned.endswith("…")
    assert answer.startswith(tuned[:-1])


def test_a_run_without_spaces_is_kept_whole_in_its_cell() -> None:
    md = table_markdown(Table(ui="table", title="T", columns=["Answer"], rows=[["x" * 200]]))
    [[cell]] = rows_of(md)
    assert cell == "x" * 200  # no characters inserted: a copied answer is the answer


def test_new_lines_do_not_break_the_table() -> None:
    md = table_markdown(Table(ui="table", title="T", columns=["A", "B"], rows=[["a\nc", "short"]]))
    assert md.splitlines()[4] == "| a c | short |"


def test_a_question_of_an_undeclared_shape_is_caught() -> None:
    from tests.unit.assistant.helpers import check_question

    base = {"id": 1, "text": "Ready?", "then": "x", "stage": "train", "choices": {}}
    check_question({**base, "kind": "training", "run_dir": "/r", "since": 0})
    with pytest.raises(AssertionError, match="missing"):
        check_question({**base, "kind": "training"})  # a training question names its run
    with pytest.raises(AssertionError, match="undeclared"):
        check_question({**base, "kind": "question", "run_dir": "/r"})
    with pytest.raises(AssertionError, match="no declared kind"):
        check_question({**base, "kind": "poll"})
