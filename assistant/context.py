"""Runtime context of the graph: the LLM and settings, injected so tests can script them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from tools.settings import Settings, get_settings

T = TypeVar("T", bound=BaseModel)


class ChatLLM(Protocol):
    """What the graph needs from the assistant model (assistant.llm.LLM provides it)."""

    model: str
    deadline: float | None
    """When set (time.monotonic()), no answer of the model runs past it (a drafting turn of several calls)."""
    cancel: threading.Event
    """Set when the user stops the turn: an answer being read in a worker thread ends at its next piece."""

    async def status(self) -> Any:
        """An assistant.llm.Availability: ok, note (reason + fix), missing_model."""
        ...

    async def pull(self, on_progress: Any = None) -> None:
        """Download the model into Ollama, calling on_progress(status, completed, total)."""
        ...

    def with_model(self, model: str) -> ChatLLM:
        """The same assistant layer for another Ollama model (to pull it, then switch to it)."""
        ...

    def structured(self, prompt: str, schema: type[T], *, system: str | None = None) -> T:
        """A validated pydantic answer (blocking; run it in a thread), bounded in tokens and time."""
        ...

    async def astructured(self, prompt: str, schema: type[T], *, system: str | None = None,
                          time_limit_s: float | None = None) -> T:
        """A validated pydantic answer, given up after `time_limit_s`."""
        ...


def _default_llm() -> ChatLLM:
    from assistant.llm import LLM

    return LLM()


@dataclass
class WizardContext:
    """Per-run context: who answers (the LLM), where work is saved (settings), the chat thread."""

    llm: ChatLLM = field(default_factory=_default_llm)
    settings: Settings = field(default_factory=get_settings)
    thread_id: str = ""
    time_limit_s: float = 45.0
    """The longest one turn waits for the assistant model before it goes on without it (tests make it short)."""
    extra: dict[str, Any] = field(default_factory=dict)
