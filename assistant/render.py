"""The one renderer: the graph's UI events, its questions and the live view of a training run become chat elements.

Nothing here decides where the conversation goes: what is shown comes from the graph (assistant/ui_events.py) or
from a run's events as assistant/watch.py reads them.
"""

from __future__ import annotations

from typing import Any

import chainlit as cl
import plotly.io

from assistant.ui_events import STAGES, Table, inert, stage_index, table_markdown
from assistant.watch import STARTING, follow_run, loss_figure
from tools.download import human_bytes
from tools.errors import storage_error
from tools.settings import get_settings


async def _tasklist(stage: str, skipped: list[str] | None = None, finished: bool = False) -> None:
    tl = cl.user_session.get("tasklist")
    if tl is None:
        tl = cl.TaskList(status="Your journey")
        for title in STAGES.values():
            await tl.add_task(cl.Task(title=title, status=cl.TaskStatus.READY))
        cl.user_session.set("tasklist", tl)
    at = stage_index(stage) if stage in STAGES else 0
    for i, task in enumerate(tl.tasks):
        done = (i < at or (finished and i == at)) and list(STAGES)[i] not in (skipped or ())
        task.status = cl.TaskStatus.DONE if done else cl.TaskStatus.RUNNING if i == at else cl.TaskStatus.READY
    await tl.send()


async def _table(ev: Table) -> None:
    await cl.Message(content=table_markdown(ev)).send()


async def _figure(ev: dict[str, Any]) -> None:
    figure: Any = plotly.io.from_json(ev["json"])
    await cl.Message(content="", elements=[cl.Plotly(name=ev["name"], figure=figure, display="inline")]).send()


async def _progress(ev: dict[str, Any]) -> None:
    bars: dict[str, cl.Message] = cl.user_session.get("progress") or {}
    total, done = ev.get("total") or 0, ev.get("completed") or 0
    bar = ""
    if total:
        filled = int(20 * done / total)
        bar = f" `{'█' * filled}{'░' * (20 - filled)}` {100 * done // total}% of {human_bytes(total)}"
    # the status may be a model's answer as it streams: shown as text
    text = f"{ev.get('title', 'Working')}: {inert(str(ev.get('status', '')))}{bar}"
    msg = bars.get(ev["key"])
    if msg is None:
        msg = cl.Message(content=text)
        await msg.send()
        bars[ev["key"]] = msg
        cl.user_session.set("progress", bars)
    else:
        msg.content = text
        await msg.update()


async def title(text: str) -> None:
    """Name the conversation (the sidebar shows it)."""
    cl.user_session.set("titled", True)
    cl.user_session.set("title", text[:80])
    await cl.context.emitter.init_thread(text[:80])


async def thinking(on: bool, text: str = "") -> None:
    """A passing note while the assistant model works on an answer; while it shows, ■ stops the wait."""
    msg = cl.user_session.get("thinking")
    turn = cl.user_session.get("turn")
    if turn is not None:
        turn.cancellable = on
    if on and msg is None:
        msg = cl.Message(content=f"_{text}_")
        await msg.send()
        cl.user_session.set("thinking", msg)
    elif not on and msg is not None:
        cl.user_session.set("thinking", None)
        await msg.remove()


async def render(ev: dict[str, Any]) -> None:
    """Turn one UI event of the graph into chat elements."""
    kind = ev["ui"]
    if kind == "say":
        await cl.Message(content=ev["text"]).send()
    elif kind == "table":
        await _table(ev)  # type: ignore[arg-type]
    elif kind == "figure":
        await _figure(ev)
    elif kind == "progress":
        await _progress(ev)
    elif kind == "stage":
        await _tasklist(ev["stage"], ev.get("skipped"), bool(ev.get("finished")))
    elif kind == "title":
        await title(ev["text"])
    elif kind == "thinking":
        await thinking(bool(ev["on"]), str(ev.get("text", "")))


async def shown(ev: dict[str, Any]) -> None:
    """Render one event; a full or read-only disk (chainlit keeps panels and charts as files) is said in a sentence,
    once per turn, and the conversation goes on without that element."""
    try:
        await render(ev)
    except OSError as exc:
        plain = storage_error(exc, get_settings().home, again="carry on: nothing you answered is lost")
        if plain is None:
            raise
        if not cl.user_session.get("storage_said"):
            cl.user_session.set("storage_said", True)
            await cl.Message(content=f"{plain.message}\n\n**What to do:** {plain.fix}").send()


async def question(q: dict[str, Any]) -> None:
    """Show the open question with its buttons (older buttons are taken away first). A training question has no
    message of its own: the live view of its run (`live_view`) shows it, with its Stop button."""
    await retire_question()
    if q.get("stage"):
        # the buttons come whatever happens to the Tasks panel: the question stays open
        await shown({"ui": "stage", "stage": q["stage"], "skipped": q.get("skipped"),
                     "finished": bool(q.get("finished"))})
    if q.get("kind") == "training":
        return
    choices: dict[str, str] = dict(q.get("choices") or {})
    if q.get("optional"):
        choices["skip"] = "Skip"
    actions = [cl.Action(name="answer", payload={"qid": q["id"], "value": k, "label": v}, label=v)
               for k, v in choices.items()]
    text = q["text"] + (f"\n\n{q['spec_md']}" if q.get("kind") == "confirm" else "")
    msg = cl.Message(content=text, actions=actions, metadata={"mtw_question": q["id"]})
    await msg.send()
    cl.user_session.set("question", msg)


def click_reply(payload: dict[str, Any]) -> dict[str, Any]:
    """What a click on one of those buttons answers with: the question it was shown with, its value and its words."""
    label = str(payload.get("label", payload.get("value", "")))
    return {"qid": payload.get("qid"), "value": payload.get("value"), "label": label}


async def retire_question() -> None:
    """An answered or superseded question keeps its text but loses its buttons."""
    msg = cl.user_session.get("question")
    if msg is not None:
        cl.user_session.set("question", None)
        await msg.remove_actions()


async def plain_error(message: str, fix: str) -> None:
    """An error a person can act on: what happened, then what to do."""
    await cl.Message(content=f"{message}\n\n**What to do:** {fix}").send()


async def _draw(chart: cl.Message | None, steps: list[tuple[int, float]],
                evals: list[tuple[int, float]]) -> cl.Message:
    """One loss chart per run, redrawn in place (the old figure is removed, not stacked)."""
    fig: Any = cl.Plotly(name="loss", figure=loss_figure(steps, evals), display="inline")
    if chart is None:
        chart = cl.Message(content="Loss (training and validation):", elements=[fig])
        await chart.send()
        return chart
    for old in chart.elements:
        await old.remove()
    chart.elements = [fig]
    await chart.update()
    return chart


async def live_view(q: dict[str, Any]) -> None:
    """Show the run of training question Q live until it ends: one line updated in place with a Stop button that
    answers Q, warnings under it, and the loss chart."""
    run_dir = q["run_dir"]
    status = cl.Message(content=STARTING, metadata={"mtw_live": run_dir},
                        actions=[cl.Action(name="answer", payload={"qid": q["id"], "value": "stop", "label": "Stop"},
                                           label="Stop")])
    await status.send()
    chart: cl.Message | None = None
    async for ev in follow_run(run_dir, q.get("since", 0)):
        if ev["live"] == "line":
            status.content = ev["text"]
            await status.update()
        elif ev["live"] == "note":
            await cl.Message(content=ev["text"]).send()
        elif ev["live"] == "chart":
            chart = await _draw(chart, ev["steps"], ev["evals"])
        else:
            await status.remove_actions()
            status.content = ev["text"]
            status.metadata = {}
            await status.update()
