"""The assistant's brain: streaming chat and typed structured output from the local Ollama model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

from tools import ollama_api
from tools.errors import MTWError, StructuredOutputError
from tools.settings import get_settings

T = TypeVar("T", bound=BaseModel)
Progress = Callable[[str, int, int], None]

class Availability(NamedTuple):
    """Can the assistant model answer right now?"""

    ok: bool
    note: str
    missing_model: bool = False


REASK = (
    "Your previous answer did not match the required JSON schema ({error}). "
    "Answer again with only a JSON object that matches the schema."
)


class LLM:
    """One Ollama model behind plain-language errors; satisfies tools.llm_protocol.StructuredLLM."""

    def __init__(self, model: str | None = None, host: str | None = None, timeout: float = 180.0,
                 **httpx_kwargs: Any) -> None:
        import ollama

        self.model = model or get_settings().assistant_model
        self.host = host or ollama_api.host()
        self._client = ollama.Client(host=self.host, timeout=timeout, **httpx_kwargs)
        self._aclient = ollama.AsyncClient(host=self.host, timeout=timeout, **httpx_kwargs)

    # availability --------------------------------------------------------------------------
    async def status(self) -> Availability:
        """Whether Ollama answers and the model is pulled; if not, the plain reason with its fix."""
        try:
            listed = await self._aclient.list()
        except Exception as exc:
            return Availability(False, str(ollama_api.translate(exc, self.model)))
        names = [m.model or "" for m in listed.models]
        if not ollama_api.has_model(self.model, names):
            return Availability(False, str(ollama_api.translate_missing(self.model)), missing_model=True)
        return Availability(True, "")

    async def pull(self, on_progress: Progress | None = None) -> None:
        """Download the model into Ollama, reporting (status, completed, total) as it goes."""
        try:
            async for part in await self._aclient.pull(self.model, stream=True):
                if on_progress:
                    on_progress(part.status or "", int(part.completed or 0), int(part.total or 0))
        except Exception as exc:
            raise ollama_api.translate(exc, self.model) from exc

    # chat ---------------------------------------------------------------------------------
    async def stream_chat(self, messages: list[dict[str, str]], **options: Any) -> AsyncIterator[str]:
        """Yield the reply piece by piece; a dropped connection mid-stream becomes a plain MTWError."""
        try:
            stream = await self._aclient.chat(self.model, messages=messages, stream=True, options=options or None)
            async for part in stream:
                if part.message and part.message.content:
                    yield part.message.content
        except MTWError:
            raise
        except Exception as exc:
            raise ollama_api.translate(exc, self.model) from exc

    # structured output ----------------------------------------------------------------------
    def structured(self, prompt: str, schema: type[T], *, system: str | None = None) -> T:
        """Answer as an instance of `schema` (Ollama `format=` JSON schema), re-asking once if invalid."""
        messages = _messages(prompt, system)
        error = ""
        for _ in range(2):
            try:
                resp = self._client.chat(self.model, messages=messages, format=schema.model_json_schema(),
                                         options={"temperature": 0})
            except Exception as exc:
                raise ollama_api.translate(exc, self.model) from exc
            content = resp.message.content or ""
            try:
                return schema.model_validate_json(content)
            except ValidationError as exc:
                error = _short(exc)
                messages = [*messages, {"role": "assistant", "content": content},
                            {"role": "user", "content": REASK.format(error=error)}]
        raise StructuredOutputError(
            f"The assistant model ({self.model}) twice answered in the wrong shape ({error}).",
            "Try again, or switch to a stronger model with MTW_ASSISTANT_MODEL (e.g. qwen2.5:7b).",
        )

    async def astructured(self, prompt: str, schema: type[T], *, system: str | None = None) -> T:
        """`structured` without blocking the event loop."""
        return await asyncio.to_thread(self.structured, prompt, schema, system=system)


def _messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    out = [{"role": "system", "content": system}] if system else []
    return [*out, {"role": "user", "content": prompt}]


def _short(exc: ValidationError) -> str:
    errs = exc.errors()
    if errs and errs[0].get("type") == "json_invalid":
        return "not valid JSON"
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in errs[:3]) or json.dumps(str(exc))
