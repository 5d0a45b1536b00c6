"""Thin edge to the user's Ollama: one client factory and the calls the ollama package lacks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from tools.errors import ModelNotPulled, MTWError, is_connection_error, is_dropped_connection, ollama_down
from tools.settings import get_settings, normalise_host


def host() -> str:
    """The Ollama URL from OLLAMA_HOST, normalised."""
    return normalise_host(get_settings().ollama_host)


def client(timeout: float | httpx.Timeout | None = 300.0, *, at: str | None = None, **httpx_kwargs: Any) -> Any:
    """A synchronous `ollama.Client` for OLLAMA_HOST (or the URL `at`)."""
    import ollama

    return ollama.Client(host=at or host(), timeout=timeout, **httpx_kwargs)


def version(timeout: float = 3.0) -> str:
    """Ollama's version string (GET /api/version); OllamaUnavailable when nothing answers."""
    try:
        r = httpx.get(f"{host()}/api/version", timeout=timeout)
        r.raise_for_status()
        return str(r.json().get("version", "unknown"))
    except Exception as exc:
        if is_connection_error(exc) or isinstance(exc, httpx.TimeoutException):
            raise ollama_down(host()) from exc
        raise MTWError(
            f"Ollama at {host()} answered oddly: {exc}.", "Check that OLLAMA_HOST points at Ollama."
        ) from exc


def list_models(timeout: float = 5.0) -> list[str]:
    """Names of the models pulled into Ollama (GET /api/tags)."""
    try:
        r = httpx.get(f"{host()}/api/tags", timeout=timeout)
        r.raise_for_status()
    except Exception as exc:
        if is_connection_error(exc) or isinstance(exc, httpx.TimeoutException):
            raise ollama_down(host()) from exc
        raise
    return [m.get("name") or m.get("model", "") for m in r.json().get("models", [])]


def has_model(name: str, models: list[str]) -> bool:
    """True when `name` is among `models`, treating a missing tag as ':latest'."""
    want = name if ":" in name else f"{name}:latest"
    return any(m in (want, name) for m in models)


def translate_missing(model: str) -> ModelNotPulled:
    """The plain error for a model that is not pulled."""
    return ModelNotPulled(model)


def translate(exc: BaseException, model: str | None = None) -> MTWError:
    """Turn an ollama/httpx failure into a plain-language MTWError."""
    import ollama

    if isinstance(exc, MTWError):
        return exc
    if is_connection_error(exc):
        return ollama_down(host())
    if is_dropped_connection(exc):
        from tools.errors import LLMDropped

        return LLMDropped("The connection to Ollama dropped in the middle of an answer.",
                          "Try again; if it keeps happening, look at Ollama's log or restart it.")
    if isinstance(exc, httpx.TimeoutException):
        from tools.errors import LLMTimeout

        return LLMTimeout(
            "Ollama took too long to answer.",
            "The model may still be loading; try again in a minute, or use a smaller model.",
        )
    if isinstance(exc, ollama.ResponseError):
        if exc.status_code == 404 and model:
            return ModelNotPulled(model)
        if exc.status_code >= 500:
            from tools.errors import LLMServerError

            return LLMServerError(f"Ollama had a server error (HTTP {exc.status_code}: {exc.error}).",
                                  "Try again; if it repeats, look at the Ollama log or restart Ollama.")
        return MTWError(f"Ollama refused the request: {exc.error}.", "Check the Ollama log (`ollama serve` output).")
    return MTWError(f"Unexpected problem talking to Ollama: {exc}.", "Try again; if it repeats, restart Ollama.")


class Streamed(NamedTuple):
    """A reply read piece by piece: its text and Ollama's done_reason ("stop", "length", or "" when cut short)."""

    text: str
    done_reason: str


LOOP_CHECK_CHARS = 80
"""How often (in characters received) a streamed reply is checked for looping."""


def stream_reply(chat_model: str, messages: list[dict[str, str]], *, options: dict[str, Any], fmt: Any = None,
                 time_limit_s: float, cancel: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic, at: str | None = None, **httpx_kwargs: Any) -> Streamed:
    """Ask `chat_model` and read its reply as it is written, giving up early: past `time_limit_s`, when `cancel` is
    set, or as soon as the text loops (LLMNonsense). Stopping closes the connection, which stops Ollama too."""
    from tools.errors import LLMCancelled, LLMNonsense, LLMTimeout
    from tools.sense import looping

    deadline = clock() + time_limit_s
    timeout = httpx.Timeout(max(1.0, time_limit_s), connect=5.0)
    parts: Any = None
    pieces: list[str] = []
    seen = 0
    done_reason = ""
    try:
        parts = client(timeout=timeout, at=at, **httpx_kwargs).chat(chat_model, messages=messages, format=fmt,
                                                            options=options, stream=True)
        for part in parts:
            if cancel is not None and cancel.is_set():
                raise LLMCancelled("Stopped: a new message came in.", "")
            if clock() > deadline:
                raise LLMTimeout(f"The assistant model ({chat_model}) took longer than {time_limit_s:.0f} s to "
                                 "answer.", "I'll go on without it for this step.")
            pieces.append(part.message.content or "" if part.message else "")
            size = sum(map(len, pieces))
            if size - seen >= LOOP_CHECK_CHARS:
                seen = size
                if looping("".join(pieces)):
                    raise LLMNonsense(f"The assistant model ({chat_model}) started repeating itself instead of "
                                      "answering.", "I'll go on without it for this step.")
            if part.done:
                done_reason = part.done_reason or "stop"  # the last line: the stream ends by itself
        parts = None
    except MTWError:
        raise
    except Exception as exc:
        if isinstance(exc, httpx.TimeoutException):
            raise LLMTimeout(f"The assistant model ({chat_model}) took longer than {time_limit_s:.0f} s to "
                             "answer.", "I'll go on without it for this step.") from exc
        raise translate(exc, chat_model) from exc
    finally:
        if parts is not None:
            parts.close()  # stopped early: closing the stream stops Ollama too
    return Streamed("".join(pieces), done_reason)


@dataclass(frozen=True)
class OllamaGGUF:
    """A model in the user's Ollama whose weights are a GGUF file this machine can read."""

    name: str
    """The Ollama name it was asked for (`smollm2:135m`)."""
    path: Path
    """Ollama's blob on disk (the FROM line of `/api/show`'s modelfile)."""
    quantization: str | None
    """As `/api/show` reports it (Q4_K_M, F16 …)."""


def gguf_blob(name: str, timeout: float = 3.0) -> OllamaGGUF | None:
    """The GGUF file Ollama keeps `name` in, when Ollama answers, holds it, and its blob is readable here; else None.

    Ollama's `/api/show` answers with a modelfile whose FROM line is the model's weights file; a model pulled into a
    local Ollama is a GGUF there, which training can read without downloading anything.
    """
    from tools.models.gguf_file import is_gguf

    try:
        r = httpx.post(f"{host()}/api/show", json={"model": name}, timeout=timeout)
        if r.status_code != 200:
            return None
        shown = r.json()
    except (httpx.HTTPError, ValueError, OSError):
        return None
    path = next((Path(line[5:].strip()) for line in str(shown.get("modelfile") or "").splitlines()
                 if line.startswith("FROM ") and Path(line[5:].strip()).is_absolute()), None)
    if path is None or not is_gguf(path):
        return None
    quant = (shown.get("details") or {}).get("quantization_level")
    return OllamaGGUF(name, path, str(quant) if quant else None)
