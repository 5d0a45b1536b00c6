"""Chainlit's side of the chat: its hooks hand the user's input to the graph and its events to the renderer.

assistant/turns.py runs the graph, assistant/render.py is the one renderer, assistant/stages/recover.py decides what
input means when it answers no open question.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any

import chainlit as cl
from chainlit.input_widget import NumberInput, Select, TextInput
from chainlit.types import ThreadDict

from assistant import render, turns
from assistant.chat_store import ChatHistory, LocalFiles, auth_secret, ensure_chat_db, files_dir
from assistant.server import install, signed_out
from assistant.uploads import share_file
from tools.dataset.intake import kept_copy
from tools.train.setting import panel, panel_changes

log = logging.getLogger("mtw.app")

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


# ------------------------------------------------------------------------------------------ settings panel

async def _settings_panel() -> None:
    """The settings panel: the same changes a user can make by saying them, with their explanations."""
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
    changed = panel_changes(cl.user_session.get("settings") or {}, values)
    cl.user_session.set("settings", dict(values))
    if changed:
        await cl.Message(content="Settings: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in changed.items()),
                         type="user_message").send()
        await turns.run({"settings": changed})


# ------------------------------------------------------------------------------------------ chat events

@cl.on_chat_start
async def start() -> None:
    """A new conversation: greet, check the machine, ask the first question."""
    await turns.graph()
    await _settings_panel()
    if turns.unsaved():
        await cl.Message(content=turns.unsaved()).send()
    if await signed_out():
        return
    async with turns.turn_lock():
        await turns.step({})


@cl.on_stop
async def on_stop() -> None:
    """The chat's ■ button: a wait for the assistant model ends at once, and the next message is taken in place of
    the one it was thinking about. Other work keeps chainlit's own behaviour."""
    turns.stop_button()
    await render.thinking(False)


@cl.on_message
async def on_message(message: cl.Message) -> None:
    """A typed message (or an attached file) goes to the graph, which decides what it means; one that comes while the
    assistant model is thinking stops the wait and is taken instead of the message it was thinking about."""
    if await signed_out():
        return
    stopped = not message.elements and (bool(cl.user_session.get("stopped_thinking")) or turns.stop_thinking())
    cl.user_session.set("stopped_thinking", False)
    async with turns.turn_lock():
        if stopped:
            await render.thinking(False)
        if not cl.user_session.get("titled") and message.content.strip():
            await render.title(message.content.strip())
        files = [e for e in message.elements or [] if getattr(e, "path", None)]
        reply: Any = {"path": files[0].path, "name": files[0].name} if files else message.content
        if files and not message.content.strip():
            # a file sent without words would show as an empty bubble under it
            message.content = f"📎 {files[0].name}"
            await message.update()
        await render.retire_question()
        await turns.give(reply, stopped=stopped)
        if files:
            await _store_once(files[0])


async def _store_once(upload: Any) -> None:
    """Once the project keeps an upload, chainlit's transit copy (what the open page downloads the attachment from)
    and the conversation's stored copy (what a reopened one shows) become that very file: the bytes are stored once."""
    state = await (await turns.graph()).aget_state(turns.config())
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
    reply = render.click_reply(action.payload)
    label = reply["label"]
    await cl.Message(content=label, type="user_message").send()
    first = not cl.user_session.get("titled")
    if first:
        await render.title(label)
    await turns.run(reply)
    if first and cl.user_session.get("title") == label[:80]:
        # chainlit names a conversation begun by a click after the callback ("answer"), racing the name set above:
        # once the turn is over its naming is done, and the button's words are set again
        await render.title(label)


@cl.on_chat_resume
async def on_resume(thread: ThreadDict) -> None:
    """A reopened conversation: one welcome back, the open question again, the Tasks panel, the live run."""
    marked = [(str(step["id"]), _marks(step)) for step in thread.get("steps", []) if isinstance(step, dict)]
    cl.user_session.set("titled", True)
    # chainlit restores the stored history right after this hook returns and would wipe anything
    # said inside it, so speak from a task that runs once the history is back
    turns.in_background(_welcome_back(marked))


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
    pending = await turns.open_question()
    # the open question's old copy, earlier welcomes and a live view left behind are replaced, not stacked
    for step_id, marks in marked:
        if marks.get("mtw_welcome") or marks.get("mtw_live") or (
                pending and marks.get("mtw_question") == pending.get("id")):
            await cl.Message(id=step_id, content="").remove()
    await _settings_panel()
    if pending is None:
        async with turns.turn_lock():
            await turns.reopen()
        return
    await cl.Message(content="Welcome back! Here is where we were:", metadata={"mtw_welcome": True}).send()
    await turns.ask(pending)
