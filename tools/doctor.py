"""Environment check: can this machine run the wizard, and what should the user fix first."""

from __future__ import annotations

import platform
import shlex
import shutil
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from tools import ollama_api
from tools.errors import MTWError
from tools.settings import Settings

Status = Literal["ok", "warning", "problem"]


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def check_ollama(settings: Settings) -> list[Check]:
    """Ollama reachable, its version, the pulled models, and whether the assistant model is there."""
    from tools.settings import assistant_model

    brain = assistant_model(settings)
    try:
        ver = ollama_api.version()
        models = ollama_api.list_models()
    except MTWError as exc:
        return [
            Check("ollama", "problem", exc.message, exc.fix),
            Check("assistant model", "warning", f"Cannot tell whether '{brain}' is pulled.",
                  "Start Ollama first; the wizard still works as a guided form without it."),
        ]
    out = [Check("ollama", "ok", f"Ollama {ver} at {ollama_api.host()}")]
    out.append(Check("models", "ok" if models else "warning",
                     ", ".join(models) if models else "No models pulled yet.",
                     "" if models else f"Pull one with `ollama pull {shlex.quote(brain)}`."))
    if ollama_api.has_model(brain, models):
        out.append(Check("assistant model", "ok", f"'{brain}' is pulled."))
    else:
        out.append(Check("assistant model", "warning", f"'{brain}' is not pulled.",
                         f"Run `ollama pull {shlex.quote(brain)}`, or set MTW_ASSISTANT_MODEL "
                         "to a model you have."))
    return out


def check_memory() -> Check:
    """RAM: the guide asks for 8 GB, 16 recommended."""
    import psutil

    gb = psutil.virtual_memory().total / 2**30
    if gb >= 16:
        return Check("memory", "ok", f"{gb:.0f} GB RAM")
    if gb >= 8:
        return Check("memory", "warning", f"{gb:.0f} GB RAM (16 GB recommended)",
                     "Train with batch size 1–2 and context 2048 (the wizard suggests it).")
    return Check("memory", "problem", f"{gb:.1f} GB RAM (8 GB is the minimum)",
                 "Use a smaller base model (e.g. Qwen2.5-0.5B) and batch size 1, or another machine.")


def check_disk(settings: Settings) -> Check:
    """Free disk where MTW_HOME lives: about 10 GB for a base model, its adapter and an export."""
    probe = settings.home
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 2**30
    where = f"{free:.0f} GB free for {settings.home}"
    if free >= 10:
        return Check("disk", "ok", where)
    return Check("disk", "warning" if free >= 3 else "problem", where,
                 "Free up space or set MTW_HOME to a larger disk; a base model plus export needs about 10 GB.")


def check_workspace(settings: Settings) -> Check:
    """MTW_HOME can be created and written."""
    import tempfile

    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=settings.home):
            pass
    except OSError as exc:
        return Check("workspace", "problem", f"Cannot write to {settings.home}: {exc.strerror}.",
                     "Set MTW_HOME to a folder you can write to.")
    return Check("workspace", "ok", f"Your work is saved in {settings.home}")


def _cpu_only_build() -> bool:
    """Whether the installed torch was built for the CPU alone (no CUDA, ROCm or XPU, and not macOS, whose build
    carries Apple's GPU), read from its version file without importing torch: that import takes seconds, and the
    chat's first answer waits for this check."""
    import sys
    from importlib.util import find_spec, module_from_spec, spec_from_file_location

    if sys.platform == "darwin":
        return False
    try:
        folder = (find_spec("torch").submodule_search_locations or [])[0]  # type: ignore[union-attr]
        spec = spec_from_file_location("_torch_build", Path(folder) / "version.py")
        build = module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(build)  # type: ignore[union-attr]
    except Exception:  # an unusual install: ask torch itself
        return False
    return all(getattr(build, key, "") is None for key in ("cuda", "hip", "xpu"))


def check_accelerator() -> list[Check]:
    """torch version and GPU: CUDA, Apple MPS, or CPU only."""
    try:
        tv = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return [Check("torch", "problem", "PyTorch is not installed.", "Run `make install`.")]
    out = [Check("torch", "ok", f"PyTorch {tv}")]
    if _cpu_only_build():
        return [*out, _no_gpu()]
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        mem = torch.cuda.get_device_properties(0).total_memory / 2**30
        out.append(Check("gpu", "ok", f"CUDA: {name}, {mem:.0f} GB"))
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append(Check("gpu", "ok", "Apple GPU (MPS)"))
    else:
        out.append(_no_gpu())
    return out


def _no_gpu() -> Check:
    return Check("gpu", "warning", f"No GPU found; training runs on the CPU ({platform.machine()}).",
                 "Fine for small datasets and small models; expect minutes per epoch, not seconds.")


def check_base_models() -> Check:
    """Which catalog base models are complete on this machine, so training can start offline (no network)."""
    from tools.download import estimated_bytes, human_bytes, needs_download
    from tools.models.catalog import CATALOG, TINY_RANDOM

    here = [key for key, entry in CATALOG.items() if key != TINY_RANDOM and entry.hf_id and not needs_download(key)]
    if here:
        return Check("base models", "ok", "Downloaded: " + ", ".join(here))
    smallest = "qwen2.5-0.5b"
    return Check("base models", "warning",
                 "No base model downloaded yet: only the built-in tiny-random (for trying the steps) and minilm "
                 "(for classifiers).",
                 f"`mtw download {shlex.quote(str(smallest))}` (about {human_bytes(estimated_bytes(smallest))}), "
                 "or let the chat offer it when you train.")


def check_recommended_base() -> Check:
    """The base model that suits this machine (memory and the time a first run takes), and why."""
    from tools.train.recommend import for_this_machine

    pick = for_this_machine()
    if pick.model == "tiny-random":
        return Check("recommended base", "warning", f"None: {pick.reason}.",
                     "Train on a machine with more memory (16 GB RAM or a GPU), or use a model folder with --model.")
    return Check("recommended base", "ok", f"{pick.model}: {pick.reason}")


def run_checks(settings: Settings) -> list[Check]:
    """Every check, most important first."""
    return [
        *check_ollama(settings),
        check_workspace(settings),
        check_memory(),
        check_disk(settings),
        *check_accelerator(),
        check_base_models(),
        check_recommended_base(),
    ]
