"""The small LLM interface the engine needs; the assistant's Ollama layer satisfies it."""

from __future__ import annotations

from typing import Protocol, TypeVar

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


class StructuredLLM(Protocol):
    """Anything that can answer a prompt with a validated pydantic object."""

    def structured(self, prompt: str, schema: type[T], *, system: str | None = None) -> T:
        """Answer `prompt` as an instance of `schema`; raise StructuredOutputError when it cannot."""
        ...
