"""A chat tab without a browser: chainlit's socket.io events and HTTP routes, as the page itself uses them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import socketio


class Chat:
    """One conversation with a running `mtw ui`: what the wizard said, the buttons it shows, and ways to answer."""

    def __init__(self, url: str, cookies: dict[str, str], thread_id: str | None = None) -> None:
        self.url = url
        self.cookies = cookies
        self.session_id = str(uuid.uuid4())
        self.thread_id = thread_id
        self.messages: dict[str, dict[str, Any]] = {}
        """Every message seen, by id, in arrival order (updates replace the text; removed ones go)."""
        self.actions: dict[str, dict[str, Any]] = {}
        """Buttons on screen, by action id."""
        self.errors: list[str] = []
        """Anything the server reported as an error."""
        self.history: list[str] = []
        """A reopened conversation's stored messages, as the page shows them again (not in `messages`)."""
        self.turns_ended = 0
        """How many times the server said a turn (a message or a click being handled) was over."""
        self.changed = asyncio.Event()
        self.sio = socketio.AsyncClient(reconnection=False)
        self.http = httpx.AsyncClient(base_url=url, cookies=cookies, timeout=60)
        for event, handler in [("new_message", self._message), ("update_message", self._message),
                               ("delete_message", self._deleted), ("action", self._action),
                               ("remove_action", self._action_gone), ("first_interaction", self._first),
                               ("resume_thread", self._resumed), ("resume_thread_error", self._error),
                               ("connect_error", self._error), ("task_end", self._turn_ended)]:
            self.sio.on(event, handler)

    async def open(self) -> Chat:
        """Connect as the page does; the wizard then greets (a new chat) or restores the thread."""
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        await self.sio.connect(self.url, headers={"Cookie": cookie, "Origin": self.url},
                               auth={"sessionId": self.session_id, "clientType": "webapp",
                                     "threadId": self.thread_id},
                               transports=["websocket"], socketio_path="/ws/socket.io", wait_timeout=60)
        await self.sio.emit("connection_successful")
        return self

    async def close(self) -> None:
        await self.sio.disconnect()
        await self.http.aclose()

    # what the server sends ------------------------------------------------------------------

    def _touch(self) -> None:
        self.changed.set()

    async def _message(self, step: dict[str, Any]) -> None:
        self.messages[step["id"]] = step
        if step.get("isError"):
            self.errors.append(str(step.get("output")))
        self._touch()

    async def _deleted(self, step: dict[str, Any]) -> None:
        self.messages.pop(step["id"], None)
        self._touch()

    async def _action(self, action: dict[str, Any]) -> None:
        self.actions[action["id"]] = action
        self._touch()

    async def _action_gone(self, action: dict[str, Any]) -> None:
        self.actions.pop(action["id"], None)
        self._touch()

    async def _first(self, data: dict[str, Any]) -> None:
        self.thread_id = data.get("thread_id") or self.thread_id
        self._touch()

    async def _resumed(self, thread: dict[str, Any]) -> None:
        self.history = [str(s.get("output") or "") for s in thread.get("steps", []) if "message" in str(s.get("type"))]
        self._touch()

    async def _turn_ended(self, data: Any = None) -> None:
        self.turns_ended += 1
        self._touch()

    async def _error(self, data: Any = None) -> None:
        self.errors.append(str(data))
        self._touch()

    # waiting ------------------------------------------------------------------------------------

    def texts(self) -> list[str]:
        return [str(m.get("output") or "") for m in self.messages.values()]

    async def wait_text(self, text: str, within_s: float = 120) -> str:
        """The first message containing TEXT, once it arrives (fails with what was said instead)."""

        def found() -> str | None:
            return next((t for t in self.texts() if text in t), None)

        return await self._until(found, within_s, f"no message with {text!r}")

    async def wait_button(self, label: str, within_s: float = 120) -> dict[str, Any]:
        """The newest button labelled LABEL, once it is on screen."""

        def found() -> dict[str, Any] | None:
            return next((a for a in reversed(self.actions.values()) if a.get("label") == label), None)

        return await self._until(found, within_s, f"no button {label!r}")

    async def wait_turn_end(self, after: int, within_s: float = 120) -> None:
        """Until the server ends a turn counted after AFTER (`turns_ended` read before sending)."""
        await self._until(lambda: True if self.turns_ended > after else None, within_s, "the turn never ended")

    async def _until(self, probe: Any, within_s: float, why: str) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while (got := probe()) is None:
            if self.errors:
                raise AssertionError(f"the server reported: {self.errors}")
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"{why}; the chat shows: {self.texts()[-6:]}, buttons "
                                     f"{[a.get('label') for a in self.actions.values()]}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 5))
        return got

    # answering ---------------------------------------------------------------------------------

    async def say(self, text: str, files: list[dict[str, Any]] | None = None) -> None:
        """Send a typed message (with files already uploaded, as references)."""
        step = {"id": str(uuid.uuid4()), "threadId": self.thread_id or "", "name": "User", "type": "user_message",
                "output": text, "createdAt": datetime.now(UTC).isoformat()}
        await self.sio.emit("client_message", {"message": step, "fileReferences": files or []})

    async def click(self, label: str) -> None:
        """Click the newest button labelled LABEL."""
        action = await self.wait_button(label)
        reply = await self.http.post("/project/action", json={"sessionId": self.session_id, "action": action})
        reply.raise_for_status()

    async def upload(self, name: str, data: bytes, mime: str = "application/json") -> dict[str, Any]:
        """Upload a file as the attach button does; returns its reference for `say`."""
        reply = await self.http.post("/project/file", params={"session_id": self.session_id},
                                     files={"file": (name, data, mime)})
        reply.raise_for_status()
        ref: dict[str, Any] = reply.json()
        return ref


# the interview typed and clicked (no assistant model): (what to do, with what, what the next question says)
INTERVIEW = [("say", "User stories for our team", "What kind of model is it?"),
             ("click", "Writes text (generation)", "Who reads what the model produces?"),
             ("say", "engineers", "How should it sound and look?"),
             ("say", "plain", "Paste one or two real samples"),
             ("click", "Skip", "must never do"),
             ("click", "Skip", "Here is your project")]


async def timed_interview(chat: Chat) -> list[float]:
    """The interview up to the spec shown for confirmation; each answer timed from sending it to the next question
    on screen (seconds), the first entry being the greeting's question after connecting."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    await chat.wait_text("What should your model do?")
    times = [loop.time() - start]
    for how, what, then in INTERVIEW:
        start = loop.time()
        if how == "say":
            await chat.say(what)
        else:
            await chat.click(what)
        await chat.wait_text(then)
        times.append(loop.time() - start)
    return times


async def plain_interview(chat: Chat) -> None:
    """The interview typed and clicked (no assistant model), up to the spec shown for confirmation."""
    await timed_interview(chat)
