"""Create a model in Ollama through its API: upload each file as a blob, then one create call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.errors import ModelNotPulled, MTWError

Progress = Callable[[str, int, int], None]
"""progress(what, done, total): called as files upload and as Ollama reports its steps."""


@dataclass
class CreateJob:
    """Everything one `create` call sends; files are uploaded first and sent by digest."""

    name: str
    """The new model's name in Ollama."""
    from_: str | None = None
    """An Ollama tag to build on (quick path, adapter route); None when `files` hold the whole model."""
    files: dict[str, Path] = field(default_factory=dict)
    """Model files by the name Ollama should see (`model.safetensors`, `model.gguf`, `tokenizer.json`)."""
    adapters: dict[str, Path] = field(default_factory=dict)
    """LoRA adapter files by name (adapter route)."""
    quantize: str | None = None
    """Quantise on create (`q4_K_M`, `q8_0`), or None to keep the uploaded precision."""
    template: str | None = None
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)
    license: str | None = None

    def payload(self, digests: dict[str, str]) -> dict[str, Any]:
        """Keyword arguments for `ollama.Client.create`, with files replaced by their uploaded digests."""
        out: dict[str, Any] = {"model": self.name, "from_": self.from_, "quantize": self.quantize,
                               "template": self.template, "system": self.system,
                               "parameters": self.parameters or None, "messages": self.messages or None,
                               "license": self.license}
        if self.files:
            out["files"] = {n: digests[str(p)] for n, p in self.files.items()}
        if self.adapters:
            out["adapters"] = {n: digests[str(p)] for n, p in self.adapters.items()}
        return {k: v for k, v in out.items() if v is not None}


def _plain(exc: BaseException, job: CreateJob, what: str) -> MTWError:
    """A failed upload or create, in words, with what to do."""
    import ollama

    from tools.ollama_api import translate

    if isinstance(exc, ollama.ResponseError):
        text = str(exc.error)
        if "digest mismatch" in text:
            return MTWError(f"Ollama received {what}, but its checksum did not match the file that was sent: the "
                            "file changed during the upload or the transfer was damaged.",
                            "Run the export again; if it repeats, check the disk Ollama stores models on "
                            "(OLLAMA_MODELS) for errors and free space.", code="digest_mismatch")
        if exc.status_code == 404 and job.from_:
            return ModelNotPulled(job.from_, f"The base model '{job.from_}' is not in your Ollama, so '{job.name}' "
                                             "cannot be built on it.")
        if "unsupported" in text.lower() and job.adapters:
            return MTWError(f"Ollama refused the adapter for '{job.name}': {text}.",
                            "This Ollama cannot load this adapter; export with --route merged instead.",
                            code="adapter_refused")
        return MTWError(f"Ollama refused to create '{job.name}' ({what}): {text}.",
                        "Check the Ollama log (`ollama serve` output); --dry-run writes the Modelfile to inspect.")
    return translate(exc, job.from_)


def upload(client: Any, job: CreateJob, progress: Progress) -> dict[str, str]:
    """Upload every file of `job` with `create_blob`; returns {path: 'sha256:…'}."""
    paths = list(job.files.values()) + list(job.adapters.values())
    total = sum(p.stat().st_size for p in paths)
    done = 0
    digests: dict[str, str] = {}
    progress("uploading", 0, total)
    for path in paths:
        try:
            digests[str(path)] = client.create_blob(path)
        except Exception as exc:
            raise _plain(exc, job, path.name) from exc
        done += path.stat().st_size
        progress(f"uploaded {path.name}", done, total)
    return digests


def create(client: Any, job: CreateJob, progress: Progress) -> dict[str, Any]:
    """Upload the files, then create the model (streaming Ollama's status); returns the create payload sent."""
    digests = upload(client, job, progress)
    payload = job.payload(digests)
    try:
        for i, update in enumerate(client.create(**payload, stream=True), start=1):
            progress(str(update.status or ""), i, 0)
    except Exception as exc:
        raise _plain(exc, job, "the model") from exc
    return payload


def delete_model(name: str) -> bool:
    """Remove a model from Ollama; False when Ollama does not have it."""
    import ollama

    from tools.ollama_api import client, translate

    try:
        client().delete(name)
    except ollama.ResponseError as exc:
        if exc.status_code == 404:
            return False
        raise translate(exc, name) from exc
    except Exception as exc:
        raise translate(exc, name) from exc
    return True
