"""Fetch a base model from the Hugging Face Hub: only the files training and export read, with progress."""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any, cast

from tools.download_hub import hub_endpoint, model_info, online, translate
from tools.download_plan import DownloadPlan, RepoFile
from tools.download_resume import PARTIAL, bytes_saved, fetch_resumable, resumable
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

INFO_TIMEOUT_S = 15.0
"""How long to wait for the Hub to describe a repo before calling it unreachable."""
DISK_HEADROOM = 200 * 1000**2
"""Free space left over after a download, so the system and a run's checkpoints still fit."""

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


# -------------------------------------------------------------------------------- which repo, which files

def repo_for(model: str) -> str:
    """The Hub repo behind a catalog key, an Ollama-style name or a Hugging Face id."""
    from tools.models.catalog import CATALOG, TINY_RANDOM, find_in_catalog

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
    from tools.models.catalog import resolve

    try:
        return not resolve(model).gguf
    except UsageError:
        return True


# -------------------------------------------------------------------------------- the plan

def plan_download(model: str, *, timeout: float = INFO_TIMEOUT_S) -> DownloadPlan:
    """Which repo and files, how many bytes, and whether they are here already (asks the Hub only when not)."""
    repo = repo_for(model)
    cache = hub_cache()
    folder = local_snapshot(repo, cache)
    if folder is not None and not missing_in_folder(folder):
        files = [RepoFile(p.name, p.stat().st_size, True) for p in sorted(folder.iterdir()) if p.is_file()]
        return DownloadPlan(model, repo, folder.name, files, cache, folder=folder)
    info = model_info(repo, model, timeout)
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
        partial = 0 if cached else bytes_saved(storage / "blobs", blobs[name], sizes[name])
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
            with online():
                blob = fetch_resumable(plan, f.name, endpoint, reach, note) if resumable(f.name) else None
                # for weights the blob is in place by now: huggingface_hub only links it into the snapshot
                pointer = hf_hub_download(plan.repo_id, f.name, revision=plan.revision, cache_dir=plan.cache_dir,
                                          endpoint=endpoint, tqdm_class=cast(Any, _byte_counter(count)))
            if blob is not None and not Path(pointer).is_symlink():
                # no symlinks here (Windows without developer mode): huggingface_hub copied the blob into the
                # snapshot; keep one copy, as it does with the files it downloads itself
                blob.unlink(missing_ok=True)
        except Exception as exc:
            raise translate(exc, plan.repo_id, model, endpoint, plan) from exc
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
    return sum(f.size if f.cached or (snapshot / f.name).is_file() else bytes_saved(storage / "blobs", f.blob, f.size)
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
    from tools.models.catalog import find_in_catalog

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
