"""Chainlit handlers only: chat events become graph input, graph output becomes chat messages."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sqlite3
from typing import Any

import aiosqlite
import chainlit as cl
from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.types import ThreadDict
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.types import Command

from assistant.chat_store import LocalFiles, auth_secret, checkpoint_db_path, ensure_chat_db
from assistant.context import WizardContext
from assistant.graph import STAGES, builder
from assistant.server import install
from tools.download import human_bytes
from tools.errors import MTWError
from tools.settings import get_settings

log = logging.getLogger("mtw.app")
_MARK = {"ok": "✅", "warning": "⚠️", "problem": "❌"}
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
    return SQLAlchemyDataLayer(conninfo=_CHAT_URL, storage_provider=LocalFiles()) if _CHAT_URL else None


install(chat_history=bool(_CHAT_URL))


async def graph() -> Any:
    """The compiled wizard with its SQLite checkpointer (opened once per process)."""
    global _graph, _unsaved
    async with _graph_lock:
        if _graph is None:
            path = checkpoint_db_path()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                saver: Any = AsyncSqliteSaver(await aiosqlite.connect(path))
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


async def _tasklist(stage: int) -> None:
    tl = cl.user_session.get("tasklist")
    if tl is None:
        tl = cl.TaskList(status="Your journey")
        for title in STAGES:
            await tl.add_task(cl.Task(title=title, status=cl.TaskStatus.READY))
        cl.user_session.set("tasklist", tl)
    for i, task in enumerate(tl.tasks):
        task.status = cl.TaskStatus.DONE if i < stage else cl.TaskStatus.RUNNING if i == stage else cl.TaskStatus.READY
    await tl.send()


async def _show_checks(checks: list[dict[str, str]]) -> None:
    lines = ["| | Check | Result |", "|---|---|---|"]
    for c in checks:
        detail = c["detail"] + (f" — {c['fix']}" if c["fix"] else "")
        lines.append(f"| {_MARK[c['status']]} | {c['name']} | {detail} |")
    await cl.Message(content="\n".join(lines)).send()


async def _show_figure(fig: dict[str, str]) -> None:
    import plotly.io

    figure: Any = plotly.io.from_json(fig["json"])
    await cl.Message(content="", elements=[cl.Plotly(name=fig["name"], figure=figure, display="inline")]).send()


async def _show_progress(msg: cl.Message | None, p: dict[str, Any]) -> cl.Message:
    total, done = p.get("total") or 0, p.get("completed") or 0
    bar = ""
    if total:
        filled = int(20 * done / total)
        bar = f" `{'█' * filled}{'░' * (20 - filled)}` {100 * done // total}% of {human_bytes(total)}"
    text = f"{p.get('title', 'Downloading')}: {p.get('status', '')}{bar}"
    if msg is None:
        msg = cl.Message(content=text)
        await msg.send()
    else:
        msg.content = text
        await msg.update()
    return msg


async def _ask(payload: dict[str, Any]) -> None:
    if payload.get("kind") == "file":
        # waits for the upload: in the background, so this turn ends and the next can begin
        _in_background(_ask_file(payload))
        return
    if payload.get("kind") == "training":
        _in_background(_follow_training(payload["run_dir"]))
        return
    choices: dict[str, str] = dict(payload.get("choices") or {})
    if payload.get("optional"):
        choices["skip"] = "Skip"
    actions = [cl.Action(name="answer", payload={"value": k, "label": v}, label=v) for k, v in choices.items()]
    text = payload["text"]
    if payload.get("kind") == "confirm":
        text = f"{text}\n\n{payload['spec_md']}"
    msg = cl.Message(content=text, actions=actions)
    await msg.send()
    cl.user_session.set("question", msg)


async def _retire_question() -> None:
    """An answered question keeps its text but loses its buttons, so old choices cannot be clicked again."""
    msg = cl.user_session.get("question")
    if msg is not None:
        cl.user_session.set("question", None)
        await msg.remove_actions()


def _turn_lock() -> asyncio.Lock:
    """One graph turn at a time per conversation: a fast click or message waits for the turn before it."""
    lock = cl.user_session.get("turn_lock")
    if lock is None:
        lock = asyncio.Lock()
        cl.user_session.set("turn_lock", lock)
    return lock


async def run(value: Any) -> None:
    """Run the graph to its next question (after any turn still in progress)."""
    async with _turn_lock():
        await _step(value)


async def _step(value: Any) -> None:
    """Run the graph to its next question, rendering what it says on the way."""
    g = await graph()
    ctx = WizardContext(settings=get_settings(), thread_id=cl.context.session.thread_id)
    inp: Any = {} if value is None else Command(resume=value)
    progress: cl.Message | None = None
    try:
        async for mode, chunk in g.astream(inp, _config(), context=ctx, stream_mode=["custom", "updates"]):
            if mode == "custom":
                if "say" in chunk:
                    await cl.Message(content=chunk["say"]).send()
                elif "checks" in chunk:
                    await _show_checks(chunk["checks"])
                elif "stage" in chunk:
                    await _tasklist(chunk["stage"])
                elif "figure" in chunk:
                    await _show_figure(chunk["figure"])
                elif "progress" in chunk:
                    progress = await _show_progress(progress, chunk["progress"])
            elif mode == "updates" and "__interrupt__" in chunk:
                await _ask(chunk["__interrupt__"][0].value)
    except MTWError as exc:
        await cl.Message(content=f"{exc.message}\n\n**What to do:** {exc.fix}").send()
    except Exception:
        log.exception("wizard step failed")
        await cl.Message(content="Something went wrong on my side. Your answers so far are saved — "
                                 "send your last answer again, or restart with `mtw ui`.").send()


async def _explain(question: str) -> None:
    from tools.troubleshoot.answer import explain_question

    found = await asyncio.to_thread(explain_question, question)
    sources = ", ".join(f"*{e.title}*" for e in found.entries)
    if found.answer:
        text = f"{found.answer}\n\n<sub>From the troubleshooting guide: {sources}</sub>"
    elif found.entries:
        best = found.entries[0]
        text = f"**{best.title}**\n\n{best.text.strip()}" + (f"\n\n_{found.note}_" if found.note else "")
    else:
        text = found.note
    await cl.Message(content=text).send()


def _in_background(coro: Any) -> None:
    task = asyncio.create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _ask_file(payload: dict[str, Any]) -> None:
    files = await cl.AskFileMessage(content=payload["text"], accept={"text/plain": payload.get("accept", [])},
                                    max_size_mb=500, timeout=3600).send()
    async with _turn_lock():
        pending = await _pending()
        if not pending or pending.get("kind") != "file":
            return  # answered meanwhile (a file attached to a message)
        await _step({"path": files[0].path, "name": files[0].name} if files else {})


async def _follow_training(run_dir: str) -> None:
    """Show the run live, then hand its outcome back to the graph (also after a UI restart)."""
    from assistant.watch import watch_run

    outcome = await watch_run(run_dir)
    await run(outcome)


async def _pending() -> dict[str, Any] | None:
    state = await (await graph()).aget_state(_config())
    for task in state.tasks:
        if task.interrupts:
            value: dict[str, Any] = task.interrupts[0].value
            return value
    return None


@cl.on_chat_start
async def start() -> None:
    """A new conversation: greet, check the machine, ask the first question."""
    await graph()
    if _unsaved:
        await cl.Message(content=_unsaved).send()
    await run(None)


@cl.on_message
async def on_message(message: cl.Message) -> None:
    """A typed answer (or an attached file) resumes the graph at its question."""
    async with _turn_lock():
        await _answer_message(message)


async def _answer_message(message: cl.Message) -> None:
    pending = await _pending()
    if pending is None:
        await cl.Message(content="This conversation has reached the end of what the chat can do for now. "
                                 "Start a new chat for another project.").send()
        return
    files = [e for e in message.elements or [] if getattr(e, "path", None)]
    if pending.get("kind") == "file":
        if files:
            await _step({"path": files[0].path, "name": files[0].name})
        else:
            await cl.Message(content="Please attach your examples file (the paperclip), or drop it here.").send()
        return
    text = message.content.strip()
    slot = str(pending.get("slot", ""))
    expects_choice = pending.get("kind") in ("confirm", "training") or slot.startswith("_") or slot == "task_type"
    if text.endswith("?") and expects_choice:
        # a question where a choice was expected: answer it from the knowledge base, then ask again
        await _explain(text)
        if pending.get("kind") != "training":
            await _ask(pending)
        return
    if pending.get("kind") == "training":
        await cl.Message(content="Training is running; its progress shows above. Use **Stop** to end it early.").send()
        return
    await _retire_question()
    await _step(message.content)


@cl.action_callback("answer")
async def on_answer(action: cl.Action) -> None:
    """A clicked button answers the question it belongs to."""
    await _retire_question()
    await cl.Message(content=action.payload.get("label", action.payload["value"]), type="user_message").send()
    await run(action.payload["value"])


@cl.action_callback("stop_training")
async def on_stop_training(action: cl.Action) -> None:
    """The Stop button: the job checkpoints and exits; the live view reports it."""
    from tools.jobs import stop_run

    if not await asyncio.to_thread(stop_run, action.payload["run_dir"]):
        await cl.Message(content="That run is not running any more.").send()


@cl.on_chat_resume
async def on_resume(thread: ThreadDict) -> None:
    """A reopened conversation: same graph thread; ask the open question again (or start if unknown)."""
    # chainlit restores the stored history right after this hook returns and would wipe anything
    # said inside it, so speak from a task that runs once the history is back
    task = asyncio.create_task(_welcome_back())
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _welcome_back() -> None:
    await asyncio.sleep(0.5)
    state = await (await graph()).aget_state(_config())
    if not state.values:
        await cl.Message(content="I could not find where this conversation left off, so let's start again.").send()
        await run(None)
        return
    pending = await _pending()
    if pending:
        await cl.Message(content="Welcome back! Here is where we were:").send()
        await _ask(pending)
