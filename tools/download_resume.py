"""Weight files that resume across runs: each comes through a partial file in the cache that outlives the process,
is fetched from where it stopped (`Range`), and is checked (size, sha256) before it is put in place."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tools.download_plan import DownloadPlan
from tools.errors import MTWError
from tools.hub_cache import storage_dir as _storage
from tools.units import human_bytes

PARTIAL = ".partial"
"""Suffix of a weight file still arriving, next to its blob: huggingface_hub neither writes nor deletes it."""
RETRY_WAITS_S = (0.0, 1.0, 2.0, 4.0, 8.0)
"""Pauses before each new try when the connection drops mid-file; a try that brought bytes resets the count."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HASH_CHUNK = 8 * 1024**2


def resumable(name: str) -> bool:
    """Weight files are the large ones (up to ~5 GB a shard): they get a partial file that outlives the process."""
    return name.endswith((".safetensors", ".bin"))


def bytes_saved(blobs: Path, blob: str, size: int) -> int:
    """What an earlier download left of a file: all of it (a blob not yet linked), its partial file's bytes, or 0."""
    if not blob:
        return 0
    if (blobs / blob).is_file():
        return size
    try:
        return min((blobs / (blob + PARTIAL)).stat().st_size, size)
    except OSError:
        return 0


@dataclass(frozen=True)
class Remote:
    """Where one file's bytes are, as the Hub describes them right now."""

    url: str
    """The final location: a signed CDN link for LFS files (these expire, so each try asks again)."""
    headers: dict[str, str]
    """What to send there: huggingface_hub's headers, without the token when the link leaves the Hub."""
    etag: str
    """The blob's name in the cache: the sha256 of the content for LFS files."""
    size: int | None
    """Bytes, when the Hub says."""


class Partial:
    """A weight file still arriving (`<blob>.partial`): the bytes on disk and their running sha256, kept in step."""

    def __init__(self, blob: Path, etag: str) -> None:
        self.path = blob.with_name(blob.name + PARTIAL)
        self.etag = etag
        self.size = 0
        self.digest = hashlib.sha256() if _SHA256.fullmatch(etag) else None
        if self.path.is_file():  # left by an earlier run: hash what it holds, so the whole file is checked at the end
            with self.path.open("rb") as f:
                while chunk := f.read(_HASH_CHUNK):
                    self._count(chunk)

    def _count(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.digest is not None:
            self.digest.update(chunk)

    def describes(self, blob: Path) -> bool:
        """Still matches the file on disk (nothing else appended to it since)."""
        on_disk = self.path.stat().st_size if self.path.is_file() else 0
        return self.path == blob.with_name(blob.name + PARTIAL) and on_disk == self.size

    def append(self, out: BinaryIO, chunk: bytes) -> None:
        out.write(chunk)
        self._count(chunk)

    def restart(self) -> None:
        self.path.unlink(missing_ok=True)
        self.size = 0
        self.digest = hashlib.sha256() if self.digest is not None else None

    def problem(self, size: int | None) -> str | None:
        """Why the finished bytes are not the file the Hub lists, or None when they are."""
        if size is not None and self.size != size:
            return f"it holds {self.size:,} bytes instead of {size:,}"
        if self.digest is not None and self.digest.hexdigest() != self.etag:
            return "its sha256 checksum does not match the Hub's"
        return None


def fetch_resumable(plan: DownloadPlan, name: str, endpoint: str, reach: Callable[[int], None],
                     note: Callable[[str], None]) -> Path:
    """Bring one weight file into its blob in the cache through a partial file that outlives this process.

    Each try asks the Hub where the file is now, then for the bytes the partial file lacks (`Range: bytes=N-`);
    a connection that drops is tried again from where it stopped, a few times. The finished file is checked
    (size, and sha256 for LFS files) before it is renamed into place; a damaged one is fetched again once.
    Returns the blob.
    """
    from huggingface_hub.utils import WeakFileLock

    storage = _storage(plan.repo_id, plan.cache_dir)
    partial: Partial | None = None
    fails, restarted = 0, False
    while True:
        kept = partial.size if partial is not None else 0
        try:
            remote = locate(plan.repo_id, name, plan.revision, endpoint)
            blob = storage / "blobs" / remote.etag
            # the lock huggingface_hub takes for this blob: two downloads of one model never append to one partial
            lock = storage.parent / ".locks" / storage.name / f"{remote.etag}.lock"
            lock.parent.mkdir(parents=True, exist_ok=True)
            blob.parent.mkdir(parents=True, exist_ok=True)
            with WeakFileLock(lock):
                if blob.is_file():
                    return blob
                if partial is None or not partial.describes(blob):
                    partial = Partial(blob, remote.etag)
                    if partial.size:
                        note(f"{name}: continuing from the {human_bytes(partial.size)} downloaded earlier")
                reach(partial.size)
                append_rest(remote, partial, reach)
                problem = partial.problem(remote.size)
                if problem is None:
                    os.replace(partial.path, blob)
                    return blob
                partial.restart()
        except Exception as exc:
            if not transient(exc):
                raise
            fails = 1 if partial is not None and partial.size > kept else fails + 1
            if fails > len(RETRY_WAITS_S):
                raise
            time.sleep(RETRY_WAITS_S[fails - 1])
            continue
        if restarted:
            raise MTWError(f"{name} of {plan.repo_id} arrived damaged twice: {problem}.",
                           fix=f"Run `mtw download {shlex.quote(str(plan.model))}` again; if it keeps happening, "
                               "something between this machine and the Hub (a proxy, a filtering antivirus) is "
                               "altering the download.",
                           code="download_damaged")
        restarted = True
        fails = 0
        note(f"{name}: the downloaded file was damaged ({problem}); deleted it and downloading it again")


def locate(repo_id: str, name: str, revision: str, endpoint: str) -> Remote:
    """Ask the Hub about one file as hf_hub_download does (HEAD on /resolve, following Hub-internal redirects)."""
    from urllib.parse import urljoin, urlsplit

    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import FileMetadataError
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(repo_id, name, revision=revision, endpoint=endpoint)
    # the token comes from HF_TOKEN or `hf auth login`, read now, as huggingface_hub reads it
    meta = get_hf_file_metadata(url, endpoint=endpoint)
    if meta.commit_hash is None or meta.etag is None:
        raise FileMetadataError(f"{url} answered without the X-Repo-Commit and ETag headers of the Hub.")
    location = urljoin(url, meta.location)
    headers = build_hf_headers()
    if urlsplit(location)[:2] != urlsplit(url)[:2]:
        headers.pop("authorization", None)  # a signed CDN link: the token stays with the Hub
    return Remote(location, headers, meta.etag, meta.size)


def append_rest(remote: Remote, partial: Partial, reach: Callable[[int], None]) -> None:
    """Ask for the bytes `partial` lacks and append them as they come; from the start when the server ignores Range."""
    from huggingface_hub import constants
    from huggingface_hub.utils import hf_raise_for_status, http_stream_backoff

    if remote.size is not None and partial.size > remote.size:
        partial.restart()
    if remote.size is not None and partial.size == remote.size:
        return
    # a compressed answer would not be a byte range of the file
    headers = {**remote.headers, "Accept-Encoding": "identity"}
    if partial.size:
        headers["Range"] = f"bytes={partial.size}-"
    with http_stream_backoff("GET", remote.url, headers=headers, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
                             retry_on_exceptions=(), retry_on_status_codes=(408, 429)) as response:
        hf_raise_for_status(response)
        if partial.size and response.status_code != 206:  # the whole file came back: start over with it
            partial.restart()
            reach(0)
        with partial.path.open("ab") as out:
            for chunk in response.iter_bytes():
                partial.append(out, chunk)
                reach(partial.size)


def transient(exc: BaseException) -> bool:
    """A connection refused, dropped or timed out, or the server failing for a moment: worth another try."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, httpx2.TransportError):
        return True
    return isinstance(exc, HfHubHTTPError) and exc.response is not None and exc.response.status_code >= 500

