"""Running the graph for the chat: one turn at a time per conversation, the user's input handed in as it came, every
event handed to the renderer. What the input means is the graph's business (assistant/stages/recover.py for input
that answers no open question)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

import aiosqlite
import chainlit as cl
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from assistant import render
from assistant.chat_store import checkpoint_db_path
from assistant.checkpoints import UpgradingSqliteSaver
from assistant.context import WizardContext
from assistant.graph import builder
from assistant.llm import LLM
from assistant.server import signed_out
from assistant.stages.recover import LATE, REOPENED
from assistant.ui_events import is_ui_event
from tools.errors import MTWError, storage_error
from tools.fileio import private_file
from tools.settings import get_settings

log = logging.getLogger("mtw.app")
_graph: Any = None
_graph_lock = asyncio.Lock()
_background: set[asyncio.Task[None]] = set()
_unsaved = ""


async def graph() -> Any:
    """The compiled wizard with its SQLite checkpointer (opened once per process)."""
    global _graph, _unsaved
    async with _graph_lock:
        if _graph is None:
            path = checkpoint_db_path()
            try:
                saver: Any = UpgradingSqliteSaver(await aiosqlite.connect(private_file(path)))
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


def unsaved() -> str:
    """Why progress cannot be saved (with the fix), or "" when it can."""
    return _unsaved


def config() -> dict[str, Any]:
    """The graph's thread for this conversation."""
    return {"configurable": {"thread_id": cl.context.session.thread_id}}


def turn_lock() -> asyncio.Lock:
    """One graph turn at a time per conversation: a click or message that comes meanwhile waits for the turn."""
    lock = cl.user_session.get("turn_lock")
    if lock is None:
        lock = asyncio.Lock()
        cl.user_session.set("turn_lock", lock)
    return lock


class Turn:
    """The graph turn running now: its task, and the assistant model it waits for (`cancellable` while it shows
    that it is thinking, when a new message may stop it)."""

    def __init__(self, task: asyncio.Task[None], llm: LLM) -> None:
        self.task = task
        self.llm = llm
        self.cancellable = False
        self.stopped = False


async def give(reply: Any, *, stopped: bool = False) -> None:
    """Hand the user's input to the graph (inside the turn lock): the answer to the open question, or, when none is
    open (the turn that was answering was stopped or cut short), input the graph's entry takes in."""
    if await open_question() is not None:
        await step(Command(resume=reply))
    else:
        await step({"reply": {LATE: reply, "stopped": stopped}})


async def run(reply: Any) -> None:
    """Give REPLY to the graph after any turn still in progress."""
    if await signed_out():
        return
    async with turn_lock():
        await give(reply)


async def reopen() -> None:
    """A reopened conversation with no question open: the wizard finishes the step it had not finished (it stopped
    between two), and when that leaves nothing open either, it is told the conversation was reopened."""
    if (await (await graph()).aget_state(config())).next:
        await step(None)
    if await open_question() is None:
        await step({"reply": {REOPENED: True}})


async def step(inp: Any) -> None:
    """Run the graph from INP (`{}` starts a conversation, None goes on with work a stop or crash cut short) to its
    next question, rendering what it emits."""
    g = await graph()
    llm = LLM()
    ctx = WizardContext(llm=llm, settings=get_settings(), thread_id=cl.context.session.thread_id)
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
        async for mode, chunk in g.astream(inp, config(), context=ctx, stream_mode=["custom", "updates"]):
            if mode == "custom" and is_ui_event(chunk):
                await render.shown(chunk)
            elif mode == "updates" and "__interrupt__" in chunk:
                await ask(chunk["__interrupt__"][0].value)
    except MTWError as exc:
        await render.plain_error(exc.message, exc.fix)
    except (OSError, sqlite3.OperationalError) as exc:
        # the wizard's own state could not be saved: say so, and show the open question again (nothing moved on)
        plain = storage_error(exc, get_settings().home, again="answer the question below again: nothing before it "
                                                              "is lost")
        if plain is None:
            log.exception("wizard step failed")
            plain = MTWError("Something went wrong on my side.", "Send your last answer again, or restart with "
                                                                 "`mtw ui`: your answers so far are saved.")
        await render.plain_error(plain.message, plain.fix)
        pending = await open_question()
        if pending is not None:
            await ask(pending)
    except Exception:
        log.exception("wizard step failed")
        await cl.Message(content="Something went wrong on my side. Your answers so far are saved — "
                                 "send your last answer again, or restart with `mtw ui`.").send()


async def open_question() -> dict[str, Any] | None:
    """The question the graph waits on, or None (a new conversation, or a turn stopped or cut short)."""
    state = await (await graph()).aget_state(config())
    for task in state.tasks:
        if task.interrupts:
            value: dict[str, Any] = task.interrupts[0].value
            return value
    return None


async def ask(q: dict[str, Any]) -> None:
    """Show the open question; a training question's run is shown live (once per run and page)."""
    await render.question(q)
    if q.get("kind") == "training":
        _follow(q)


def stop_thinking() -> bool:
    """A new message while the assistant model is thinking stops that wait (the answer it was for is dropped)."""
    turn: Turn | None = cl.user_session.get("turn")
    if turn is None or not turn.cancellable or turn.task.done():
        return False
    turn.stopped = True
    turn.llm.cancel.set()  # a blocking call in a worker thread ends at its next piece
    turn.task.cancel()
    return True


def stop_button() -> None:
    """The chat's ■ button (chainlit stops the turn's task): a wait for the assistant model ends at once, and the
    next message is taken in place of the one it was thinking about."""
    turn: Turn | None = cl.user_session.get("turn")
    if turn is not None and turn.cancellable:
        turn.stopped = True
        turn.llm.cancel.set()
        cl.user_session.set("stopped_thinking", True)


def in_background(coro: Any) -> asyncio.Task[None]:
    """Run CORO beside the chat's turns (kept referenced until it is done)."""
    task = asyncio.create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


def _follow(q: dict[str, Any]) -> None:
    followers: dict[str, asyncio.Task[None]] = cl.user_session.get("followers") or {}
    running = followers.get(q["run_dir"])
    if running is not None and not running.done():
        return
    followers[q["run_dir"]] = in_background(_watch(q))
    cl.user_session.set("followers", followers)


async def _watch(q: dict[str, Any]) -> None:
    """Show the run until it ends, then tell the graph it ended (also after a restart): the graph reads how."""
    await render.live_view(q)
    await run({"ended": q["run_dir"]})
