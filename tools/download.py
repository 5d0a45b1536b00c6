"""Fetch a base model from the Hugging Face Hub: only the files training and export read, with progress."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shlex
import shutil
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from tools.errors import MTWError, UsageError
from tools.fileio import atomic_write_text
from tools.hub_cache import REPO_ID as _REPO_ID
from tools.hub_cache import hub_cache, local_snapshot
from tools.hub_cache import storage_dir as _storage
from tools.units import human_bytes

Progress = Callable[[str, int, int], None]
"""on_progress(status, bytes_done, bytes_total): the same shape as an Ollama pull's progress.

status is the file arriving, "starting", "done", "already downloaded", or a sentence for the user.
"""
ROUTINE = ("starting", "done", "already downloaded")

DEFAULT_ENDPOINT = "https://huggingface.co"
INFO_TIMEOUT_S = 15.0
"""How long to wait for the Hub to describe a repo before calling it unreachable."""
DISK_HEADROOM = 200 * 1000**2
"""Free space left over after a download, so the system and a run's checkpoints still fit."""
PARTIAL = ".partial"
"""Suffix of a weight file still arriving, next to its blob: huggingface_hub neither writes nor deletes it."""
RETRY_WAITS_S = (0.0, 1.0, 2.0, 4.0, 8.0)
"""Pauses before each new try when the connection drops mid-file; a try that brought bytes resets the count."""

BUILT_IN = ("tiny-random", "minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")
CONFIG_FILES = ("config.json", "generation_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "chat_template.jinja", "chat_template.json", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model", "vocab.json", "vocab.txt", "merges.txt")
VOCABULARIES = ("tokenizer.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.json",
                "vocab.txt")
"""Any one of these is a tokenizer transformers can build."""
SAFETENSORS_INDEX = "model.safetensors.index.json"
BIN_INDEX = "pytorch_model.bin.index.json"


# -------------------------------------------------------------------------------- where things are

def hub_endpoint() -> str:
    """The Hub to download from (HF_ENDPOINT, read now: huggingface_hub reads it once, at import)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


# -------------------------------------------------------------------------------- which repo, which files

def repo_for(model: str) -> str:
    """The Hub repo behind a catalog key, an Ollama-style name or a Hugging Face id."""
    from tools.train.catalog import CATALOG, TINY_RANDOM, find_in_catalog

    name = model.strip()
    if name.lower() in BUILT_IN:
        raise UsageError(f"'{name}' is built in: there is nothing to download.",
                         fix=f"Train with it right away: mtw train --data DATA --model {name} --out RUN_DIR")
    if Path(name).expanduser().is_dir():
        raise UsageError(f"'{name}' is a folder on this machine: there is nothing to download.",
                         fix=f"Train on it as it is: mtw train --data DATA --model {name} --out RUN_DIR")
    entry = find_in_catalog(name)
    if entry is not None:
        return entry.hf_id
    if _REPO_ID.fullmatch(name):
        return name
    known = ", ".join(k for k in CATALOG if k != TINY_RANDOM)
    raise UsageError(f"Unknown model '{model}': it is neither a catalog name nor a Hugging Face id (owner/name).",
                     fix=f"Use one of: {known}; or a Hugging Face id such as Qwen/Qwen2.5-0.5B-Instruct.")


def select_files(names: Iterable[str]) -> list[str]:
    """The files training and export read: config, tokenizer, and one copy of the weights (safetensors first).

    Subfolders (original/, onnx/), other formats (.gguf, .pt, .msgpack, .h5), code and docs stay on the Hub.
    """
    top = {n for n in names if "/" not in n}
    keep = {n for n in top if n in CONFIG_FILES or n in TOKENIZER_FILES}
    safetensors = sorted(n for n in top if n.endswith(".safetensors"))
    transformers_named = [n for n in safetensors if n.startswith("model")]
    if transformers_named:
        # some repos add a second copy in another layout (consolidated.safetensors): the model*.safetensors are ours
        keep |= set(transformers_named) | ({SAFETENSORS_INDEX} & top)
    elif safetensors:
        keep |= set(safetensors)
    else:
        keep |= {n for n in top if n.startswith("pytorch_model") and n.endswith(".bin")} | ({BIN_INDEX} & top)
    return sorted(keep)


def missing_parts(names: Collection[str]) -> list[str]:
    """What a set of file names lacks to be trainable, in plain words (empty when nothing is missing)."""
    missing = [] if "config.json" in names else ["config.json"]
    if not any(v in names for v in VOCABULARIES):
        missing.append("a tokenizer")
    if not any(n.endswith(".safetensors") or (n.startswith("pytorch_model") and n.endswith(".bin")) for n in names):
        missing.append("weights in safetensors or PyTorch format")
    return missing


def missing_in_folder(folder: Path) -> list[str]:
    """What a local model folder lacks to be trainable; each shard an index lists counts (no network)."""
    names = {p.name for p in folder.iterdir() if p.is_file()}
    missing = missing_parts(names)
    has_safetensors = any(n.endswith(".safetensors") for n in names)
    for index in (SAFETENSORS_INDEX,) if has_safetensors else (BIN_INDEX,):
        if index in names:
            try:
                shards = set(json.loads((folder / index).read_text(encoding="utf-8"))["weight_map"].values())
            except (OSError, ValueError, KeyError, AttributeError):
                return [*missing, index]
            missing += sorted(shards - names)
    return missing


def needs_download(model: str) -> bool:
    """True when `model` names a Hub repo whose files are not complete on this machine (no network), and the
    user's Ollama does not hold it either (training then reads Ollama's own GGUF)."""
    try:
        repo = repo_for(model)
    except UsageError:
        return False
    folder = local_snapshot(repo)
    if folder is not None and not missing_in_folder(folder):
        return False
    from tools.train.catalog import resolve

    try:
        return not resolve(model).gguf
    except UsageError:
        return True


# -------------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class RepoFile:
    """One file to fetch."""

    name: str
    """Path inside the repo (always top level here)."""
    size: int
    """Bytes."""
    cached: bool
    """Already in the local cache from an earlier (perhaps interrupted) download."""
    blob: str = ""
    """Its name in the cache's blobs/ folder: its sha256 when it lives in LFS, its git hash otherwise."""
    partial_bytes: int = 0
    """Bytes of it a stopped download left behind (its .partial file, or all of it when only the snapshot's link to
    its blob is missing), counted as already here."""


@dataclass
class DownloadPlan:
    """What `download` would fetch, from where, to where."""

    model: str
    """The name the user gave (catalog key, Ollama-style name or Hugging Face id)."""
    repo_id: str
    """The Hugging Face repo."""
    revision: str
    """The commit the files come from."""
    files: list[RepoFile]
    """The selected files (see select_files)."""
    cache_dir: Path
    """The Hugging Face cache they go to."""
    gated: bool = False
    """The repo's owner asks each user to accept a licence before downloading."""
    folder: Path | None = None
    """The local snapshot folder, once complete."""
    skipped: list[str] = field(default_factory=list)
    """Files in the repo that are not fetched."""

    @property
    def total_bytes(self) -> int:
        """Size of every selected file."""
        return sum(f.size for f in self.files)

    @property
    def missing_bytes(self) -> int:
        """Bytes still to fetch (what partial files hold is not fetched again)."""
        return sum(f.size - f.partial_bytes for f in self.files if not f.cached)

    @property
    def complete(self) -> bool:
        """Everything is on this machine already."""
        return self.folder is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the shape `mtw download --json` prints)."""
        return {"model": self.model, "repo_id": self.repo_id, "revision": self.revision,
                "cache_dir": str(self.cache_dir), "folder": str(self.folder) if self.folder else None,
                "gated": self.gated, "total_bytes": self.total_bytes, "missing_bytes": self.missing_bytes,
                "complete": self.complete,
                "files": [{"name": f.name, "size": f.size, "cached": f.cached, "partial_bytes": f.partial_bytes}
                          for f in self.files], "skipped": self.skipped}


def plan_download(model: str, *, timeout: float = INFO_TIMEOUT_S) -> DownloadPlan:
    """Which repo and files, how many bytes, and whether they are here already (asks the Hub only when not)."""
    repo = repo_for(model)
    cache = hub_cache()
    folder = local_snapshot(repo, cache)
    if folder is not None and not missing_in_folder(folder):
        files = [RepoFile(p.name, p.stat().st_size, True) for p in sorted(folder.iterdir()) if p.is_file()]
        return DownloadPlan(model, repo, folder.name, files, cache, folder=folder)
    info = _model_info(repo, model, timeout)
    sizes = {s.rfilename: int((s.lfs.size if s.lfs else s.size) or 0) for s in info.siblings or []}
    blobs = {s.rfilename: str((s.lfs.sha256 if s.lfs else s.blob_id) or "") for s in info.siblings or []}
    chosen = select_files(sizes)
    lacking = missing_parts(chosen)
    if lacking:
        raise MTWError(f"{repo} on the Hugging Face Hub lacks what training reads: {', '.join(lacking)} "
                       "(it may hold only GGUF or ONNX files).",
                       fix="Pick the original model repo (the one with .safetensors files), or a catalog name "
                           "such as qwen2.5-0.5b.", code="download_unusable")
    storage = _storage(repo, cache)
    files = []
    for name in chosen:
        cached = (storage / "snapshots" / str(info.sha) / name).is_file()
        partial = 0 if cached else _bytes_saved(storage / "blobs", blobs[name], sizes[name])
        files.append(RepoFile(name, sizes[name], cached, blobs[name], partial))
    return DownloadPlan(model, repo, str(info.sha), files, cache, gated=bool(info.gated),
                        skipped=sorted(set(sizes) - set(chosen)))


# -------------------------------------------------------------------------------- the download

def download(model: str, progress: Progress | None = None, *, plan: DownloadPlan | None = None) -> Path:
    """Fetch what `plan_download` selects into the Hugging Face cache; return the local snapshot folder.

    Already complete: returns at once, without the network. Weight files arrive in a .partial file that
    outlives the process (Ctrl-C, a crash, a lost connection): the next run asks only for the rest and
    checks the whole file before it joins the cache. Config and tokenizer files are small and go through
    huggingface_hub as they are.
    """
    plan = plan or plan_download(model)
    report = progress or (lambda status, done, total: None)
    total = plan.total_bytes
    if plan.folder is not None:
        report("already downloaded", total, total)
        return plan.folder
    check_disk_space(plan)
    from huggingface_hub import hf_hub_download

    endpoint = hub_endpoint()
    done = total - plan.missing_bytes
    report("starting", done, total)

    def note(text: str) -> None:
        report(text, done, total)

    todo = sorted((f for f in plan.files if not f.cached), key=lambda f: (f.size, f.name))  # config first
    for f in todo:
        others = done - f.partial_bytes  # every byte here but this file's

        def count(n: int, name: str = f.name) -> None:
            nonlocal done
            done += n
            report(name, done, total)

        def reach(n: int, name: str = f.name, base: int = others) -> None:
            nonlocal done
            done = base + n
            report(name, done, total)

        try:
            with _online():
                blob = _fetch_resumable(plan, f.name, endpoint, reach, note) if _resumable(f.name) else None
                # for weights the blob is in place by now: huggingface_hub only links it into the snapshot
                pointer = hf_hub_download(plan.repo_id, f.name, revision=plan.revision, cache_dir=plan.cache_dir,
                                          endpoint=endpoint, tqdm_class=cast(Any, _byte_counter(count)))
            if blob is not None and not Path(pointer).is_symlink():
                # no symlinks here (Windows without developer mode): huggingface_hub copied the blob into the
                # snapshot; keep one copy, as it does with the files it downloads itself
                blob.unlink(missing_ok=True)
        except Exception as exc:
            raise _translate(exc, plan.repo_id, model, endpoint, plan) from exc
        done = others + f.size  # exact, also when the server sent fewer progress updates than bytes
        report(f.name, done, total)
    storage = _storage(plan.repo_id, plan.cache_dir)
    # the main branch now points at what was fetched, so offline loaders (and the next run) find it
    atomic_write_text(storage / "refs" / "main", plan.revision)
    folder = storage / "snapshots" / plan.revision
    lacking = missing_in_folder(folder)
    if lacking:
        raise MTWError(f"The download of {plan.repo_id} finished, but {', '.join(lacking)} is missing.",
                       fix=f"Run `mtw download {shlex.quote(str(model))}` again.", code="download_incomplete")
    # every selected file is complete: a partial left now is of a version the Hub no longer serves
    for stale in (storage / "blobs").glob("*" + PARTIAL):
        stale.unlink(missing_ok=True)
    report("done", total, total)
    return folder


def bytes_here(plan: DownloadPlan) -> int:
    """Bytes of the plan's files on this machine now, partial files included: where the next run starts (no network)."""
    storage = _storage(plan.repo_id, plan.cache_dir)
    snapshot = storage / "snapshots" / plan.revision
    return sum(f.size if f.cached or (snapshot / f.name).is_file() else _bytes_saved(storage / "blobs", f.blob, f.size)
               for f in plan.files)


def check_disk_space(plan: DownloadPlan) -> None:
    """Refuse before starting when the cache's disk cannot hold what is left to fetch."""
    need = plan.missing_bytes + DISK_HEADROOM
    probe = plan.cache_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise MTWError(
            f"Not enough free disk space for {plan.model}: it needs {human_bytes(need)} in {plan.cache_dir} "
            f"(the model plus some room to spare), and only {human_bytes(free)} is free.",
            fix=f"Free up {human_bytes(need - free)} there, or set HF_HOME to a folder on a disk with room "
                f"(for this command and for training), then run `mtw download {shlex.quote(str(plan.model))}` again.",
            code="disk_full")


def estimated_bytes(model: str) -> int:
    """A catalog model's download size from its parameter count (bf16 weights), for when the Hub is away."""
    from tools.train.catalog import find_in_catalog

    entry = find_in_catalog(model)
    return int(entry.params_b * 2e9) if entry is not None else 0


def _byte_counter(on_bytes: Callable[[int], None]) -> type:
    """A stand-in for huggingface_hub's tqdm bar that draws nothing and forwards the bytes written to disk."""

    class ByteCounter:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.n = 0
            self.total = kwargs.get("total")

        def __enter__(self) -> ByteCounter:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def update(self, n: float | None = 1) -> None:
            self.n += int(n or 0)
            on_bytes(int(n or 0))

        # network bytes (Xet transfers) differ from bytes on disk; the disk side is what progress counts
        def update_transfer(self, n: float | None = 1) -> None:
            return None

        def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
            return None

        def set_transfer_postfix_str(self, *args: Any, **kwargs: Any) -> None:
            return None

        def refresh(self) -> None:
            return None

        def close(self) -> None:
            return None

    return ByteCounter


# -------------------------------------------------------------------------------- weights that resume across runs

_SHA256 = re.compile(r"[0-9a-f]{64}")
_HASH_CHUNK = 8 * 1024**2


def _resumable(name: str) -> bool:
    """Weight files are the large ones (up to ~5 GB a shard): they get a partial file that outlives the process."""
    return name.endswith((".safetensors", ".bin"))


def _bytes_saved(blobs: Path, blob: str, size: int) -> int:
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
class _Remote:
    """Where one file's bytes are, as the Hub describes them right now."""

    url: str
    """The final location: a signed CDN link for LFS files (these expire, so each try asks again)."""
    headers: dict[str, str]
    """What to send there: huggingface_hub's headers, without the token when the link leaves the Hub."""
    etag: str
    """The blob's name in the cache: the sha256 of the content for LFS files."""
    size: int | None
    """Bytes, when the Hub says."""


class _Partial:
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


def _fetch_resumable(plan: DownloadPlan, name: str, endpoint: str, reach: Callable[[int], None],
                     note: Callable[[str], None]) -> Path:
    """Bring one weight file into its blob in the cache through a partial file that outlives this process.

    Each try asks the Hub where the file is now, then for the bytes the partial file lacks (`Range: bytes=N-`);
    a connection that drops is tried again from where it stopped, a few times. The finished file is checked
    (size, and sha256 for LFS files) before it is renamed into place; a damaged one is fetched again once.
    Returns the blob.
    """
    from huggingface_hub.utils import WeakFileLock

    storage = _storage(plan.repo_id, plan.cache_dir)
    partial: _Partial | None = None
    fails, restarted = 0, False
    while True:
        kept = partial.size if partial is not None else 0
        try:
            remote = _locate(plan.repo_id, name, plan.revision, endpoint)
            blob = storage / "blobs" / remote.etag
            # the lock huggingface_hub takes for this blob: two downloads of one model never append to one partial
            lock = storage.parent / ".locks" / storage.name / f"{remote.etag}.lock"
            lock.parent.mkdir(parents=True, exist_ok=True)
            blob.parent.mkdir(parents=True, exist_ok=True)
            with WeakFileLock(lock):
                if blob.is_file():
                    return blob
                if partial is None or not partial.describes(blob):
                    partial = _Partial(blob, remote.etag)
                    if partial.size:
                        note(f"{name}: continuing from the {human_bytes(partial.size)} downloaded earlier")
                reach(partial.size)
                _append_rest(remote, partial, reach)
                problem = partial.problem(remote.size)
                if problem is None:
                    os.replace(partial.path, blob)
                    return blob
                partial.restart()
        except Exception as exc:
            if not _transient(exc):
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


def _locate(repo_id: str, name: str, revision: str, endpoint: str) -> _Remote:
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
    return _Remote(location, headers, meta.etag, meta.size)


def _append_rest(remote: _Remote, partial: _Partial, reach: Callable[[int], None]) -> None:
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


def _transient(exc: BaseException) -> bool:
    """A connection refused, dropped or timed out, or the server failing for a moment: worth another try."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, httpx2.TransportError):
        return True
    return isinstance(exc, HfHubHTTPError) and exc.response is not None and exc.response.status_code >= 500


# -------------------------------------------------------------------------------- the Hub, and its errors

_online_lock = threading.Lock()
_online_users = 0
_offline_before = False


@contextmanager
def _online() -> Iterator[None]:
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


def _model_info(repo: str, model: str, timeout: float) -> Any:
    from huggingface_hub import HfApi

    endpoint = hub_endpoint()
    try:
        with _online():
            return HfApi(endpoint=endpoint).model_info(repo, files_metadata=True, timeout=timeout)
    except Exception as exc:
        raise _translate(exc, repo, model, endpoint) from exc


def _translate(exc: BaseException, repo: str, model: str, endpoint: str, plan: DownloadPlan | None = None) -> MTWError:
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
