"""The Hugging Face Hub as `mtw download` meets it: where it is, letting huggingface_hub online for one download,
asking about a repo, and its errors told as one plain sentence with the fix."""

from __future__ import annotations

import errno
import os
import shlex
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tools.download_plan import DownloadPlan
from tools.errors import MTWError, UsageError
from tools.hub_cache import hub_cache
from tools.units import human_bytes

DEFAULT_ENDPOINT = "https://huggingface.co"


def hub_endpoint() -> str:
    """The Hub to download from (HF_ENDPOINT, read now: huggingface_hub reads it once, at import)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


_online_lock = threading.Lock()
_online_users = 0
_offline_before = False


@contextmanager
def online() -> Iterator[None]:
    """Let huggingface_hub reach the network for the duration of a download the user asked for.

    The app sets HF_HUB_OFFLINE so that nothing else ever contacts the Hub (tools/embeddings.py), and
    huggingface_hub reads that variable once, at import; an explicit download is the one exception.
    """
    global _online_users, _offline_before
    from huggingface_hub import constants

    with _online_lock:
        if _online_users == 0:
            _offline_before = constants.HF_HUB_OFFLINE
            constants.HF_HUB_OFFLINE = False
        _online_users += 1
    try:
        yield
    finally:
        with _online_lock:
            _online_users -= 1
            if _online_users == 0:
                constants.HF_HUB_OFFLINE = _offline_before


def model_info(repo: str, model: str, timeout: float) -> Any:
    from huggingface_hub import HfApi

    endpoint = hub_endpoint()
    try:
        with online():
            return HfApi(endpoint=endpoint).model_info(repo, files_metadata=True, timeout=timeout)
    except Exception as exc:
        raise translate(exc, repo, model, endpoint) from exc


def translate(exc: BaseException, repo: str, model: str, endpoint: str, plan: DownloadPlan | None = None) -> MTWError:
    """One plain sentence and its fix for whatever the Hub (or the disk) said."""
    from huggingface_hub.errors import (
        FileMetadataError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    again = f"run `mtw download {shlex.quote(str(model))}` again"
    if isinstance(exc, MTWError):
        return exc
    if isinstance(exc, LocalEntryNotFoundError) and isinstance(exc.__cause__, HfHubHTTPError | FileMetadataError):
        exc = exc.__cause__  # "not in the cache either" wraps what the Hub actually said
    if isinstance(exc, FileMetadataError):
        return MTWError(f"{endpoint} does not answer like the Hugging Face Hub (no file metadata for {repo}).",
                        fix=f"Check HF_ENDPOINT (unset it for huggingface.co), then {again}.",
                        code="download_failed")
    if isinstance(exc, GatedRepoError):
        return MTWError(
            f"{repo} is gated: its owner asks every user to accept their licence before downloading.",
            fix=f"Accept it at https://huggingface.co/{repo} (signed in), then log in on this machine with "
                f"`hf auth login` (or set HF_TOKEN to an access token), and {again}.", code="download_gated")
    if isinstance(exc, RepositoryNotFoundError):
        return UsageError(
            f"There is no model called {repo} on the Hugging Face Hub (or it is private).",
            fix="Check the spelling (owner/name, e.g. Qwen/Qwen2.5-0.5B-Instruct), or use a catalog name such as "
                "qwen2.5-0.5b; for a private model, log in with `hf auth login` first.")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        need = human_bytes(plan.missing_bytes) if plan else "more space"
        return MTWError(f"The disk filled up while downloading {repo} (it needs {need} in total).",
                        fix=f"Free up space in {hub_cache()}, then {again}: it continues where it stopped.",
                        code="disk_full")
    import httpx2

    offline = isinstance(exc, httpx2.TransportError | LocalEntryNotFoundError | OfflineModeIsEnabled
                         | ConnectionError | TimeoutError)
    if offline:
        return MTWError(
            f"Cannot reach the Hugging Face Hub at {endpoint}: this machine seems to be offline, or the connection "
            "dropped.",
            fix=f"Connect to the internet and {again}: it continues where it stopped. Without internet: copy the "
                "model folder from a machine that has it and train with `--model /path/to/folder`.",
            code="download_offline")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return MTWError(f"The Hugging Face Hub answered {status} while downloading {repo}.",
                        fix=f"Try again in a few minutes: {again}.", code="download_failed")
    return MTWError(f"The download of {repo} failed: {exc}.",
                    fix=f"{again.capitalize()}: it continues where it stopped.", code="download_failed")
