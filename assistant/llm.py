"""The assistant's brain: streaming chat and typed structured output from the local Ollama model."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

from tools import ollama_api
from tools.errors import LLMCancelled, LLMNonsense, LLMTimeout, MTWError, StructuredOutputError
from tools.llm_protocol import token_budget
from tools.sense import looping
from tools.settings import assistant_model

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
TIME_LIMIT_S = 45.0
"""The longest one short structured answer may take (a re-ask included) before the turn goes on without it."""
SLOWEST_TOKENS_PER_S = 25.0
"""A long answer (a drafted example) gets the time it takes at this speed, when that is more than TIME_LIMIT_S."""
SEED = 0


class LLM:
    """One Ollama model behind plain-language errors; satisfies tools.llm_protocol.StructuredLLM.

    Every structured answer is bounded: `num_predict` sized to its schema, a time limit, a repetition stop while
    it streams, and `cancel` (set when the user sends a new message) ends it at the next piece. `busy` counts the
    answers being waited for, so the chat knows a new message may cancel one.
    """

    def __init__(self, model: str | None = None, host: str | None = None, timeout: float = 180.0, *,
                 time_limit_s: float = TIME_LIMIT_S, cancel: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic, **httpx_kwargs: Any) -> None:
        import ollama

        self.model = model or assistant_model()
        self.host = host or ollama_api.host()
        self.time_limit_s = time_limit_s
        self.cancel = cancel or threading.Event()
        self.clock = clock
        self.busy = 0
        self.deadline: float | None = None
        """When set (a `clock()` time), no answer runs past it: a turn of several calls ends on time."""
        self._httpx = httpx_kwargs
        self._client = ollama.Client(host=self.host, timeout=timeout, **httpx_kwargs)
        self._aclient = ollama.AsyncClient(host=self.host, timeout=timeout, **httpx_kwargs)

    def with_model(self, model: str) -> LLM:
        """The same layer (host, limits, cancel) for another Ollama model."""
        return LLM(model, self.host, time_limit_s=self.time_limit_s, cancel=self.cancel, clock=self.clock,
                   **self._httpx)

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

    # structured output ----------------------------------------------------------------------
    def structured(self, prompt: str, schema: type[T], *, system: str | None = None,
                   num_predict: int | None = None, time_limit_s: float | None = None) -> T:
        """Answer as an instance of `schema` (Ollama `format=` JSON schema), re-asking once if invalid.

        Blocking (drafting runs it in a worker thread); LLMTimeout, LLMCancelled or LLMNonsense end it early.
        """
        options = self._options(schema, num_predict)
        limit = time_limit_s or self._limit(options)
        deadline = self.clock() + limit
        messages = _messages(prompt, system)
        self.busy += 1
        try:
            for attempt in range(2):
                if self.cancel.is_set():
                    raise LLMCancelled("Stopped: a new message came in.", "")
                left = deadline - self.clock()
                if left <= 0:
                    raise self._late(limit)
                reply = ollama_api.stream_reply(self.model, messages, options=options, fmt=_format(schema),
                                                time_limit_s=left, cancel=self.cancel, clock=self.clock,
                                                at=self.host, **self._httpx)
                done = self._parse(reply.text, reply.done_reason, schema, attempt)
                if isinstance(done, BaseModel):
                    return done
                messages = [*messages, {"role": "assistant", "content": reply.text},
                            {"role": "user", "content": REASK.format(error=done)}]
        finally:
            self.busy -= 1
        raise self._wrong_shape()

    async def astructured(self, prompt: str, schema: type[T], *, system: str | None = None,
                          num_predict: int | None = None, time_limit_s: float | None = None) -> T:
        """`structured` on the event loop: cancelling the awaiting task closes the connection (Ollama stops)."""
        options = self._options(schema, num_predict)
        limit = time_limit_s or self._limit(options)
        messages = _messages(prompt, system)
        self.busy += 1
        try:
            async with asyncio.timeout(limit):
                for attempt in range(2):
                    text, done_reason = await self._astream(messages, options, schema)
                    done = self._parse(text, done_reason, schema, attempt)
                    if isinstance(done, BaseModel):
                        return done
                    messages = [*messages, {"role": "assistant", "content": text},
                                {"role": "user", "content": REASK.format(error=done)}]
        except TimeoutError as exc:
            raise self._late(limit) from exc
        finally:
            self.busy -= 1
        raise self._wrong_shape()

    async def _astream(self, messages: list[dict[str, str]], options: dict[str, Any], schema: type[BaseModel]
                       ) -> tuple[str, str]:
        pieces: list[str] = []
        seen = 0
        stream: Any = None
        done_reason = ""
        try:
            stream = await self._aclient.chat(self.model, messages=messages, format=_format(schema), options=options,
                                              stream=True)
            async for part in stream:
                pieces.append(part.message.content or "" if part.message else "")
                size = sum(map(len, pieces))
                if size - seen >= ollama_api.LOOP_CHECK_CHARS:
                    seen = size
                    if looping("".join(pieces)):
                        raise self._looping()
                if part.done:
                    done_reason = part.done_reason or "stop"  # the last line: the stream ends by itself
            stream = None
        except MTWError:
            raise
        except (asyncio.CancelledError, TimeoutError):
            raise
        except Exception as exc:
            raise ollama_api.translate(exc, self.model) from exc
        finally:
            if stream is not None:
                # stopped early (a loop, the time limit, a new message): closing the stream stops Ollama too
                await stream.aclose()
        return "".join(pieces), done_reason

    def _limit(self, options: dict[str, Any]) -> float:
        """The time an answer of this size may take: the usual limit, longer for a long answer (a drafted example)
        written at the slowest speed still worth waiting for, and never past the turn's `deadline`."""
        limit = max(self.time_limit_s, float(options["num_predict"]) / SLOWEST_TOKENS_PER_S)
        if self.deadline is not None:
            limit = min(limit, max(0.5, self.deadline - self.clock()))
        return limit

    def _options(self, schema: type[BaseModel], num_predict: int | None) -> dict[str, Any]:
        # greedy and seeded: the same answer to the same message; the budget ends a loop the stream check missed
        return {"temperature": 0, "seed": SEED, "num_predict": num_predict or token_budget(schema)}

    def _parse(self, text: str, done_reason: str, schema: type[T], attempt: int) -> T | str:
        """The validated answer, or why it is not one (to re-ask with); an answer cut off by its budget or that
        loops inside its fields is nonsense, not worth a re-ask."""
        if done_reason == "length":
            raise LLMNonsense(f"The assistant model ({self.model}) wrote past the length this answer needs "
                              "(it was rambling or repeating itself).", "I'll go on without it for this step.")
        try:
            answer = schema.model_validate_json(text)
        except ValidationError as exc:
            return _short(exc)
        if any(looping(value) for value in _strings(answer.model_dump())):
            raise self._looping()
        return answer

    def _looping(self) -> LLMNonsense:
        return LLMNonsense(f"The assistant model ({self.model}) started repeating itself instead of answering.",
                           "I'll go on without it for this step.")

    def _late(self, limit: float) -> LLMTimeout:
        return LLMTimeout(f"The assistant model ({self.model}) took longer than {limit:.0f} s to answer.",
                          "I'll go on without it for this step.")

    def _wrong_shape(self) -> StructuredOutputError:
        return StructuredOutputError(f"The assistant model ({self.model}) twice answered in the wrong shape.",
                                     "I'll go on without it for this step.")


BETTER: dict[str, tuple[str, str]] = {"phi4-mini": ("qwen2.5:7b", "4.7 GB"), "qwen2.5:3b": ("qwen2.5:7b", "4.7 GB"),
                                     "llama3.2:3b": ("qwen2.5:7b", "4.7 GB")}
"""A stronger assistant model for each of the guide's small ones (name, download size)."""
STRONG = ("qwen2.5:7b", "qwen2.5:14b", "llama3.1:8b", "phi4", "gemma3:12b", "mistral-small")


def better_model(current: str) -> tuple[str, str] | None:
    """The model to suggest when `current` writes poor drafts (name, download size): the guide's phi4-mini for any
    model smaller than it, a 7B for the guide's own; None for a model that is already large."""
    bare = current.removesuffix(":latest")
    if bare in BETTER:
        return BETTER[bare]
    if bare.startswith(STRONG):
        return None
    return ("phi4-mini", "2.5 GB")


def _format(schema: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent as `format=`: no properties beyond the schema's own, so constrained decoding cannot add
    a field the answer would not use."""
    out = schema.model_json_schema()
    out.setdefault("additionalProperties", False)
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    out = [{"role": "system", "content": system}] if system else []
    return [*out, {"role": "user", "content": prompt}]


def _short(exc: ValidationError) -> str:
    errs = exc.errors()
    if errs and errs[0].get("type") == "json_invalid":
        return "not valid JSON"
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in errs[:3]) or json.dumps(str(exc))
