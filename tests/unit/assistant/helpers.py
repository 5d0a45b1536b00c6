"""Drive the wizard's graph as the chat does, with a scripted assistant model (a test double)."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, get_args, get_type_hints

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from assistant.context import WizardContext
from assistant.graph import builder
from assistant.llm import Availability
from assistant.state import flat
from assistant.ui_events import Question, is_ui_event
from tools.settings import get_settings

# each kind of question by the word in its `kind`
QUESTION_KINDS = {get_args(get_type_hints(variant)["kind"])[0]: variant for variant in get_args(Question)}


def check_question(q: dict[str, Any]) -> None:
    """The question the graph asks is one of the kinds `Question` declares, with that kind's keys and no others."""
    assert q.get("kind") in QUESTION_KINDS, f"a question of no declared kind: {q}"
    variant = QUESTION_KINDS[q["kind"]]
    missing = set(variant.__required_keys__) - set(q)
    unknown = set(q) - set(variant.__required_keys__) - set(variant.__optional_keys__)
    said = f"{q['kind']} question {q.get('text', '')[:60]!r}"
    assert not missing, f"{said}: missing {missing}"
    assert not unknown, f"{said}: undeclared {unknown}"


@dataclass(frozen=True)
class Slow:
    """A scripted answer that takes `seconds` to come (the turn's time limit decides whether it is waited for)."""

    seconds: float
    answer: Any


class ScriptedLLM:
    """An assistant model whose structured answers are queued by the test (a double, never shipped).

    An answer may be a dict (validated against the schema asked for), an exception to raise, or Slow(...).
    """

    model = "phi4-mini"
    deadline = None

    def __init__(self, *updates: Any, ok: bool = True, missing: bool = False) -> None:
        self.updates = deque(updates)
        self.ok = ok
        self.missing = missing
        self.pulled = False
        self.prompts: list[str] = []
        self.cancel = threading.Event()

    async def status(self) -> Availability:
        if self.missing and not self.pulled:
            return Availability(False, "The model 'phi4-mini' is not in your Ollama yet.", True)
        if self.ok:
            return Availability(True, "")
        return Availability(False, "Ollama is not running (nothing answers). Start it.")

    def with_model(self, model: str) -> ScriptedLLM:
        other = ScriptedLLM(ok=self.ok)
        other.model = model
        self.switched_to = other
        return other

    async def pull(self, on_progress=None) -> None:
        for done in (0, 50, 100):
            on_progress("pulling", done, 100)
        self.pulled = True

    async def astructured(self, prompt, schema, *, system=None, time_limit_s=None):
        self.prompts.append(prompt)
        nxt = self.updates.popleft() if self.updates else {}
        if isinstance(nxt, Slow):
            await asyncio.sleep(nxt.seconds)
            nxt = nxt.answer
        if isinstance(nxt, Exception):
            raise nxt
        return schema.model_validate(nxt)


class Session:
    """Run to the open question, answer by typing, clicking or attaching; collect every UI event on the way."""

    def __init__(self, llm: ScriptedLLM, thread: str = "t1", time_limit_s: float = 45.0) -> None:
        self.graph = builder.compile(checkpointer=InMemorySaver())
        self.ctx = WizardContext(llm=llm, settings=get_settings(), thread_id=thread, time_limit_s=time_limit_s)
        self.cfg = {"configurable": {"thread_id": thread}}
        self.events: list[dict[str, Any]] = []
        self.question: dict[str, Any] | None = None

    @property
    def said(self) -> list[str]:
        return [e["text"] for e in self.events if e["ui"] == "say"]

    @property
    def progress(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["ui"] == "progress"]

    def tables(self, title: str = "") -> list[dict[str, Any]]:
        return [e for e in self.events if e["ui"] == "table" and title in e["title"]]

    async def _run(self, inp: Any) -> dict[str, Any] | None:
        self.question = None
        async for mode, chunk in self.graph.astream(inp, self.cfg, context=self.ctx,
                                                    stream_mode=["custom", "updates"]):
            if mode == "custom":
                assert is_ui_event(chunk), chunk  # nodes only ever emit the typed UI events
                self.events.append(chunk)
            if mode == "updates" and "__interrupt__" in chunk:
                self.question = chunk["__interrupt__"][0].value
                check_question(self.question)
        return self.question

    async def send(self, value: Any = None) -> dict[str, Any] | None:
        """Start (no value) or answer: a typed string, a file {path, name}, or a run's {outcome}."""
        return await self._run({} if value is None else Command(resume=value))

    async def resume(self) -> dict[str, Any] | None:
        """Go on from where the graph stopped (after a crash, or a state set by the test)."""
        return await self._run(None)

    async def click(self, key: str, question: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Click a button of the open question (or of an older one, to test stale clicks)."""
        q = question or self.question
        assert q is not None, "no question is open"
        assert key in {**q["choices"], "skip": "Skip"}, (key, q["choices"])
        return await self._run(Command(resume={"qid": q["id"], "value": key, "label": q["choices"].get(key, key)}))

    async def state(self) -> dict[str, Any]:
        """The conversation's state as one flat dict of fields (each stage's sub-state spread beside the rest)."""
        return flat((await self.graph.aget_state(self.cfg)).values)
