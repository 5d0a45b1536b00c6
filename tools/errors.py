"""Plain-language errors: every failure a user can hit becomes a sentence and a fix, in one place."""

from __future__ import annotations

import shlex


class MTWError(Exception):
    """A failure the user can act on: what went wrong (`message`) and what to do (`fix`)."""

    code: str = "error"

    def __init__(self, message: str, fix: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        if code:
            self.code = code

    def __str__(self) -> str:
        return f"{self.message} {self.fix}".strip()


class WorkspaceError(MTWError):
    """MTW_HOME or a file in it cannot be read or written."""

    code = "workspace"


class UsageError(MTWError):
    """The user asked for something that cannot work as asked (bad flag value, missing file)."""

    code = "usage"


class OllamaUnavailable(MTWError):
    """Ollama is not running or not reachable at OLLAMA_HOST."""

    code = "ollama_down"


class ModelNotPulled(MTWError):
    """The named model is not in the user's Ollama."""

    code = "model_missing"

    def __init__(self, model: str, message: str = "", fix: str = "") -> None:
        super().__init__(
            message or f"The model '{model}' is not in your Ollama yet.",
            fix or f"Download it with `ollama pull {shlex.quote(str(model))}` (or let the wizard pull it for you).",
        )
        self.model = model


class LLMTimeout(MTWError):
    """Ollama took too long to answer."""

    code = "ollama_timeout"


class LLMDropped(MTWError):
    """Ollama answered, then the connection broke before the answer was complete."""

    code = "ollama_dropped"


class LLMServerError(MTWError):
    """Ollama answered with a server error (HTTP 5xx)."""

    code = "ollama_server_error"


class StructuredOutputError(MTWError):
    """The model's answer did not fit the expected shape, even after asking again."""

    code = "bad_llm_output"


class LLMNonsense(StructuredOutputError):
    """The answer had the right shape but no sense: it looped, ran past its length, or copied the question."""

    code = "llm_nonsense"


class LLMCancelled(MTWError):
    """The answer was no longer wanted (the user sent a new message meanwhile)."""

    code = "llm_cancelled"


def ollama_down(host: str) -> OllamaUnavailable:
    """The one sentence for 'Ollama is not running'."""
    return OllamaUnavailable(
        f"Ollama is not running (nothing answers at {host}).",
        "Start it with `ollama serve` (or open the Ollama app), or set OLLAMA_HOST to where it runs.",
    )


def is_connection_error(exc: BaseException) -> bool:
    """True for 'nobody is listening' from the ollama client: built-in ConnectionError or httpx's."""
    import httpx  # local: keep this module import-light

    return isinstance(exc, ConnectionError | httpx.ConnectError)


def is_dropped_connection(exc: BaseException) -> bool:
    """True when the server was reached but the connection broke mid-answer (not the same as 'not running')."""
    import httpx

    return isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError)


def is_out_of_memory(exc: BaseException) -> bool:
    """True when a training or generation step ran out of GPU or CPU memory."""
    text = f"{type(exc).__name__}: {exc}".lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "outofmemoryerror" in text


def storage_error(exc: Exception, where: object, again: str = "") -> MTWError | None:
    """A full disk or an unwritable folder, as the OS or SQLite reports it, as one sentence and its fix (None for
    any other error).

    AGAIN is what to do once it is fixed ("run the same command again"); by default, continue the run with --resume.
    """
    import errno
    import sqlite3

    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        exc = OSError(errno.ENOSPC if "full" in text else errno.EROFS if "readonly" in text else None, text)
    if not isinstance(exc, OSError):
        return None
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return MTWError(f"The disk holding {where} is full, so it could not be saved.",
                        f"Free some space (or use a folder on a disk with room), then {again}." if again else
                        "Free some space (or move the folder to a disk with room), then continue with --resume: "
                        "nothing saved before is lost.", code="disk_full")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return MTWError(f"{where} cannot be written (the folder is read-only or not yours).",
                        f"Make it writable (or use a folder you own), then {again}." if again else
                        "Make it writable (or copy the run to a folder you own), then continue with --resume.",
                        code="read_only")
    return None
