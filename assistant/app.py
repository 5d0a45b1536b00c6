"""Chainlit handlers and the one renderer: chat events become graph input, the graph's UI events become messages."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sqlite3
from typing import Any

import aiosqlite
import chainlit as cl
from chainlit.types import ThreadDict
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.types import Command

from assistant.chat_store import ChatHistory, LocalFiles, auth_secret, checkpoint_db_path, ensure_chat_db
from assistant.context import WizardContext
from assistant.graph import builder
from assistant.llm import LLM
from assistant.server import install, signed_out
from assistant.ui_events import STAGES, Table, inert, is_ui_event, stage_index, table_markdown
from tools.download import human_bytes
from tools.errors import MTWError, storage_error
from tools.fileio import private_file
from tools.settings import get_settings

log = logging.getLogger("mtw.app")
_graph: Any = None
_graph_lock = asyncio.Lock()
_background: set[asyncio.Task[None]] = set()
_unsaved = ""

try:
    os.environ.setdefault("CHAINLIT_AUTH_SECRET", auth_secret())
    _CHAT_URL: str | None = ensure_chat_db()
except (OSError, sqlite3.Error) as exc:  # MTW_HOME not writable: the chat still works, without history
    log.warning("chat history disabled: %s", exc)
    os.environ.setdefault("CHAINLIT_AUTH_SECRET", secrets.token_urlsafe(48))
    _CHAT_URL = None


@cl.data_layer
def data_layer() -> Any:
    """Chat history in MTW_HOME/chat.db, its charts and files in MTW_HOME/chat-files, so a reopened conversation
    comes back whole."""
    return ChatHistory(conninfo=_CHAT_URL, storage_provider=LocalFiles()) if _CHAT_URL else None


install(chat_history=bool(_CHAT_URL))


async def graph() -> Any:
    """The compiled wizard with its SQLite checkpointer (opened once per process)."""
    global _graph, _unsaved
    async with _graph_lock:
        if _graph is None:
            path = checkpoint_db_path()
            try:
                saver: Any = AsyncSqliteSaver(await aiosqlite.connect(private_file(path)))
                await saver.setup()
            except (OSError, sqlite3.Error) as exc:
                # keep the conversation going in memory and tell the user how to make it stick
                log.warning("checkpoints disabled: %s", exc)
                _unsaved = (f"I cannot save your progress in {path.parent} ({exc}). This conversation works, "
                            "but it is lost when the wizard stops. Fix: set MTW_HOME to a folder you can write "
                            "to, e.g. `MTW_HOME=~/mtw-work mtw ui`.")
                saver = InMemorySaver()
            _graph = builder.compile(checkpointer=saver)
    return _graph


def _config() -> dict[str, Any]:
    return {"configurable": {"thread_id": cl.context.session.thread_id}}


# ------------------------------------------------------------------------------------------ the renderer

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
    import plotly.io

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


async def _title(text: str) -> None:
    cl.user_session.set("titled", True)
    cl.user_session.set("title", text[:80])
    await cl.context.emitter.init_thread(text[:80])


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
        await _title(ev["text"])
    elif kind == "thinking":
        await _thinking(bool(ev["on"]), str(ev.get("text", "")))


async def _thinking(on: bool, text: str = "") -> None:
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


async def _shown(ev: dict[str, Any]) -> None:
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


async def _ask(q: dict[str, Any]) -> None:
    """Show the open question with its buttons (older buttons are taken away first)."""
    await _retire_question()
    if q.get("stage"):
        # the buttons come whatever happens to the Tasks panel: the question stays open
        await _shown({"ui": "stage", "stage": q["stage"], "skipped": q.get("skipped"),
                      "finished": bool(q.get("finished"))})
    if q.get("kind") == "training":
        _follow(q)
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


async def _retire_question() -> None:
    """An answered or superseded question keeps its text but loses its buttons."""
    msg = cl.user_session.get("question")
    if msg is not None:
        cl.user_session.set("question", None)
        await msg.remove_actions()


# ------------------------------------------------------------------------------------------ running the graph

def _turn_lock() -> asyncio.Lock:
    """One graph turn at a time per conversation: a click or message that comes meanwhile waits for the turn."""
    lock = cl.user_session.get("turn_lock")
    if lock is None:
        lock = asyncio.Lock()
        cl.user_session.set("turn_lock", lock)
    return lock


async def run(value: Any, *, fresh: bool = False) -> None:
    """Run the graph to its next question (after any turn still in progress)."""
    if await signed_out():
        return
    async with _turn_lock():
        await _step(value, fresh=fresh)


class Turn:
    """The graph turn running now: its task, and the assistant model it waits for (`cancellable` while it shows
    that it is thinking, when a new message may stop it). A plain class: chainlit runs this file as a script,
    where a dataclass cannot resolve its own annotations."""

    def __init__(self, task: asyncio.Task[None], llm: LLM) -> None:
        self.task = task
        self.llm = llm
        self.cancellable = False
        self.stopped = False


async def _step(value: Any, *, fresh: bool = False) -> None:
    """Run the graph from the open question (or from the start, or on from a crash), rendering what it emits."""
    g = await graph()
    llm = LLM()
    ctx = WizardContext(llm=llm, settings=get_settings(), thread_id=cl.context.session.thread_id)
    inp: Any = {} if fresh else None if value is None else Command(resume=value)
    cl.user_session.set("storage_said", False)
    task = asyncio.create_task(_drive(g, inp, ctx))
    turn = Turn(task, llm)
    cl.user_session.set("turn", turn)
    try:
        await task
    except asyncio.CancelledError:
        if not turn.stopped:
            raise  # the chat itself is going away
    finally:
        cl.user_session.set("turn", None)


async def _drive(g: Any, inp: Any, ctx: WizardContext) -> None:
    try:
        async for mode, chunk in g.astream(inp, _config(), context=ctx, stream_mode=["custom", "updates"]):
            if mode == "custom" and is_ui_event(chunk):
                await _shown(chunk)
            elif mode == "updates" and "__interrupt__" in chunk:
                await _ask(chunk["__interrupt__"][0].value)
    except MTWError as exc:
        await cl.Message(content=f"{exc.message}\n\n**What to do:** {exc.fix}").send()
    except (OSError, sqlite3.OperationalError) as exc:
        # the wizard's own state could not be saved: say so, and ask the open question again (nothing moved on)
        plain = storage_error(exc, get_settings().home, again="answer the question below again: nothing before it "
                                                              "is lost")
        if plain is None:
            log.exception("wizard step failed")
            plain = MTWError("Something went wrong on my side.", "Send your last answer again, or restart with "
                                                                 "`mtw ui`: your answers so far are saved.")
        await cl.Message(content=f"{plain.message}\n\n**What to do:** {plain.fix}").send()
        pending, _ = await _pending()
        if pending is not None:
            await _ask(pending)
    except Exception:
        log.exception("wizard step failed")
        await cl.Message(content="Something went wrong on my side. Your answers so far are saved — "
                                 "send your last answer again, or restart with `mtw ui`.").send()


@cl.on_stop
async def on_stop() -> None:
    """The chat's ■ button (chainlit stops the turn's task): a wait for the assistant model ends at once, and the
    next message is taken in place of the one it was thinking about. Other work keeps chainlit's own behaviour."""
    turn: Turn | None = cl.user_session.get("turn")
    if turn is not None and turn.cancellable:
        turn.stopped = True
        turn.llm.cancel.set()
        cl.user_session.set("stopped_thinking", True)
    await _thinking(False)


def _stop_thinking() -> bool:
    """A new message while the assistant model is thinking stops that wait (the answer it was for is dropped)."""
    turn: Turn | None = cl.user_session.get("turn")
    if turn is None or not turn.cancellable or turn.task.done():
        return False
    turn.stopped = True
    turn.llm.cancel.set()  # a blocking call in a worker thread ends at its next piece
    turn.task.cancel()
    return True


async def _take_instead(reply: Any) -> None:
    """Answer the open question with `reply` in place of the message whose turn was stopped halfway."""
    g = await graph()
    await _thinking(False)
    await cl.Message(content="I stopped waiting for the assistant model and took your new message instead.").send()
    await g.aupdate_state(_config(), {"reply": reply}, as_node="listen")
    await _step(None)


async def _pending() -> tuple[dict[str, Any] | None, bool]:
    """The open question, and whether the graph has work left to finish (a crash between two nodes)."""
    state = await (await graph()).aget_state(_config())
    for task in state.tasks:
        if task.interrupts:
            value: dict[str, Any] = task.interrupts[0].value
            return value, False
    return None, bool(state.next)


def _in_background(coro: Any) -> asyncio.Task[None]:
    task = asyncio.create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


def _follow(q: dict[str, Any]) -> None:
    """Show the run live (once per run and page), then hand its outcome to the graph (also after a restart)."""
    followers: dict[str, asyncio.Task[None]] = cl.user_session.get("followers") or {}
    running = followers.get(q["run_dir"])
    if running is not None and not running.done():
        return
    followers[q["run_dir"]] = _in_background(_watch(q))
    cl.user_session.set("followers", followers)


async def _watch(q: dict[str, Any]) -> None:
    from assistant.watch import watch_run
    from tools.jobs import run_outcome

    await watch_run(q["run_dir"], q["id"], q.get("since", 0))
    outcome = await asyncio.to_thread(run_outcome, q["run_dir"])
    await run({"outcome": outcome})


async def _settings_panel() -> None:
    """The settings panel: the same changes a user can make by saying them, with their explanations."""
    from chainlit.input_widget import NumberInput, Select, TextInput

    from tools.train.setting import panel

    widgets: list[Any] = []
    for item in panel():
        common = {"id": item["id"], "label": item["label"], "description": item["description"]}
        if item["kind"] == "select":
            widgets.append(Select(**common, values=item["values"], initial_value=item["initial"]))
        elif item["kind"] == "number":
            widgets.append(NumberInput(**common, initial=item["initial"]))
        else:
            widgets.append(TextInput(**common, initial=item["initial"]))
    values = await cl.ChatSettings(widgets).send()
    # a copy: chainlit writes later changes into the very dict it handed back
    cl.user_session.set("settings", dict(values))


@cl.on_settings_update
async def on_settings(values: dict[str, Any]) -> None:
    """A change in the settings panel is a setting said to the graph (checked and planned again there)."""
    from tools.train.setting import panel_changes

    changed = panel_changes(cl.user_session.get("settings") or {}, values)
    cl.user_session.set("settings", dict(values))
    if changed:
        await cl.Message(content="Settings: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in changed.items()),
                         type="user_message").send()
        await run({"settings": changed})


# ------------------------------------------------------------------------------------------ chat events

@cl.on_chat_start
async def start() -> None:
    """A new conversation: greet, check the machine, ask the first question."""
    await graph()
    await _settings_panel()
    if _unsaved:
        await cl.Message(content=_unsaved).send()
    await run(None, fresh=True)


@cl.on_message
async def on_message(message: cl.Message) -> None:
    """A typed message (or an attached file) goes to the graph, which decides what it means; one that comes while the
    assistant model is thinking stops the wait and is taken instead of the message it was thinking about."""
    if await signed_out():
        return
    stopped = not message.elements and (bool(cl.user_session.get("stopped_thinking")) or _stop_thinking())
    cl.user_session.set("stopped_thinking", False)
    async with _turn_lock():
        pending, unfinished = await _pending()
        if stopped and pending is None and unfinished:
            await _take_instead(message.content)
            return
        if pending is None:
            # a crash between two steps: finish them, then take the message at the question that follows
            if unfinished:
                await _step(None)
                pending, _ = await _pending()
            if pending is None:
                await _step(None, fresh=True)
                return
        if not cl.user_session.get("titled") and message.content.strip():
            await _title(message.content.strip())
        files = [e for e in message.elements or [] if getattr(e, "path", None)]
        if files:
            reply: Any = {"path": files[0].path, "name": files[0].name}
            if not message.content.strip():
                # a file sent without words would show as an empty bubble under it
                message.content = f"📎 {files[0].name}"
                await message.update()
            if pending.get("kind") != "file":
                await cl.Message(content="I'll look at files when I ask for your examples; for now, here is the "
                                         "question again.").send()
                await _ask(pending)
                return
        else:
            reply = message.content
        if pending.get("kind") != "training":
            await _retire_question()
        await _step(reply)
        if files:
            await _store_once(files[0])


async def _store_once(upload: Any) -> None:
    """Once the project keeps an upload, chainlit's transit copy (what the open page downloads the attachment from)
    and the conversation's stored copy (what a reopened one shows) become that very file: the bytes are stored once."""
    from pathlib import Path

    from assistant.chat_store import files_dir
    from assistant.uploads import share_file
    from tools.dataset.intake import kept_copy

    state = await (await graph()).aget_state(_config())
    name = (state.values.get("spec") or {}).get("name")
    scratch = Path(upload.path)
    kept = await asyncio.to_thread(kept_copy, name, scratch) if name else None
    if kept is None:
        return  # not taken in (refused, or asked for again): chainlit drops its copy when the chat ends
    copies = [scratch]
    if _CHAT_URL:
        # chainlit stores the conversation's copy from a task started with the message
        for _ in range(200):
            stored = next((p for p in files_dir().glob(f"*/{upload.id}/*") if not p.name.startswith(".")), None)
            if stored is not None:
                copies.append(stored)
                break
            await asyncio.sleep(0.05)
    for copy in copies:
        try:
            await asyncio.to_thread(share_file, kept, copy)
        except OSError as exc:  # e.g. a file system without hard links: a second copy, nothing lost
            log.warning("upload stored twice: %s", exc)


@cl.action_callback("answer")
async def on_answer(action: cl.Action) -> None:
    """A clicked button answers the question it was shown with (the graph ignores older ones)."""
    label = action.payload.get("label", action.payload.get("value", ""))
    await cl.Message(content=label, type="user_message").send()
    first = not cl.user_session.get("titled")
    if first:
        await _title(label)
    await run({"qid": action.payload.get("qid"), "value": action.payload.get("value"), "label": label})
    if first and cl.user_session.get("title") == label[:80]:
        # chainlit names a conversation begun by a click after the callback ("answer"), racing the name set above:
        # once the turn is over its naming is done, and the button's words are set again
        await _title(label)


@cl.on_chat_resume
async def on_resume(thread: ThreadDict) -> None:
    """A reopened conversation: one welcome back, the open question again, the Tasks panel, the live run."""
    marked = [(str(step["id"]), _marks(step)) for step in thread.get("steps", []) if isinstance(step, dict)]
    cl.user_session.set("titled", True)
    # chainlit restores the stored history right after this hook returns and would wipe anything
    # said inside it, so speak from a task that runs once the history is back
    _in_background(_welcome_back(marked))


def _marks(step: Any) -> dict[str, Any]:
    """What the wizard marked a stored message as (its metadata may come back as JSON text)."""
    meta = step.get("metadata") if isinstance(step, dict) else None
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            return {}
    return meta if isinstance(meta, dict) else {}


async def _welcome_back(marked: list[tuple[str, dict[str, Any]]]) -> None:
    await asyncio.sleep(0.5)
    state = await (await graph()).aget_state(_config())
    if not state.values:
        await cl.Message(content="I could not find where this conversation left off, so let's start again.").send()
        await run(None, fresh=True)
        return
    pending, unfinished = await _pending()
    # the open question's old copy, earlier welcomes and a live view left behind are replaced, not stacked
    for step_id, marks in marked:
        if marks.get("mtw_welcome") or marks.get("mtw_live") or (
                pending and marks.get("mtw_question") == pending.get("id")):
            await cl.Message(id=step_id, content="").remove()
    await _settings_panel()
    if pending is None and unfinished:
        await run(None)
        return
    if pending:
        await cl.Message(content="Welcome back! Here is where we were:", metadata={"mtw_welcome": True}).send()
        await _ask(pending)
