"""Base and tuned answers from llama.cpp: one llama-server on the run's base GGUF with its adapter, scale 0 or 1.

When the run trained on a GGUF file and llama.cpp's `llama-server` is on this machine (LLAMA_CPP_DIR/bin, or
PATH), the adapter is converted once to a GGUF adapter (llama.cpp's convert_lora_to_gguf.py). With two or more
free cores two servers answer the two sides at the same time, the base's with no adapter and the tuned one's with
it at scale 1 (llama.cpp batches only requests with the same adapter scale, so one server would answer one side
after the other); on one free core one server answers both, each request setting the adapter's scale (0 = the
base, 1 = the tuned model). Prompts are
rendered with the run's own chat template and sent as token ids, so the model reads exactly what it was trained
on. This is the engine Ollama runs, on the very weights the run trained on, and far faster than PyTorch on a CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import MTWError
from tools.evaluate.generate import Generation, Progress, end_ids, render_prompt

if TYPE_CHECKING:
    from tools.evaluate.suite import TestPrompt

SERVER = "llama-server"
SLOTS = 4
"""Answers generated side by side: measured on 2 busy cores, 16 answers took 134 s with 4 slots and 209 s with 1."""
START_TIMEOUT_S = 120.0
ANSWER_TIMEOUT_S = 900.0
"""One answer of up to 1,024 tokens on a slow, busy CPU; a server that takes longer has hung."""
SCALES = {"base": 0.0, "tuned": 1.0}
LAYOUTS = ("pair", "one")
"""`pair`: one server per side, both at once; `one`: one server, the sides one after the other."""


def find_llama_server(env: Mapping[str, str] | None = None) -> Path | None:
    """llama.cpp's llama-server from LLAMA_CPP_DIR/bin (where the export finds its converters) or PATH."""
    env = os.environ if env is None else env
    root = env.get("LLAMA_CPP_DIR")
    if root and (Path(root) / "bin" / SERVER).is_file():
        return Path(root) / "bin" / SERVER
    found = shutil.which(SERVER, path=env.get("PATH"))
    return Path(found) if found else None


def base_gguf(run_dir: Path) -> Path | None:
    """The GGUF file the run trained on (RUN_DIR/base.json), or None for a Hugging Face base or when it is gone."""
    from tools.train.bases import run_base

    base = run_base(run_dir)
    path = Path(base.gguf) if base is not None and base.gguf else None
    return path if path is not None and path.is_file() else None


def gguf_config_dir(gguf: Path, out_dir: Path) -> Path:
    """A folder with config.json read from the GGUF's own metadata: what the LoRA converter needs of the base."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    out_dir.mkdir(parents=True, exist_ok=True)
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # the converter picks the architecture by this name, which a config read from a GGUF does not carry
    config.architectures = [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[config.model_type]]
    config.save_pretrained(out_dir)
    return out_dir


def adapter_gguf(run_dir: Path, gguf: Path, converter: Path) -> Path:
    """RUN_DIR/eval/engine/adapter.gguf, converted from RUN_DIR/adapter (again only when the adapter is newer)."""
    from tools.export.merge import convert_adapter_to_gguf

    adapter = run_dir / "adapter"
    work = run_dir / "eval" / "engine"
    out = work / "adapter.gguf"
    weights = adapter / "adapter_model.safetensors"
    if out.is_file() and weights.is_file() and out.stat().st_mtime >= weights.stat().st_mtime:
        return out
    work.mkdir(parents=True, exist_ok=True)
    partial = work / "adapter.gguf.partial"
    convert_adapter_to_gguf(converter, adapter, gguf_config_dir(gguf, work / "base-config"), partial)
    partial.replace(out)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """One llama-server on 127.0.0.1 for the length of an evaluation (a context manager that always stops it)."""

    def __init__(self, server: Path, model: Path, *, lora: Path | None, threads: int, slots: int,
                 slot_context: int, applied: bool = False) -> None:
        self.port = _free_port()
        self.lora = lora
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [str(server), "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port), "--no-webui",
               "--offline", "-t", str(threads), "-tb", str(threads), "-np", str(slots),
               "-c", str(slots * slot_context)]
        if lora is not None:
            # loaded at scale 0 (every request sets the scale it wants) unless it is to be applied throughout
            cmd += ["--lora", str(lora)] + ([] if applied else ["--lora-init-without-apply"])
        self.cmd = cmd
        self.process: subprocess.Popen[bytes] | None = None
        # its log goes to a file: a pipe nobody reads fills up and stalls the server
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)

    def __enter__(self) -> LlamaServer:
        self.process = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                tail = self.log.read().decode(errors="replace")
                self.log.close()
                raise MTWError(f"llama.cpp could not load the model: {' / '.join(tail.strip().splitlines()[-2:])}",
                               "The answers come from PyTorch instead.", code="engine_failed")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise MTWError(f"llama.cpp did not start within {START_TIMEOUT_S:.0f} s.", "The answers come from PyTorch "
                       "instead.", code="engine_failed")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /completion; a dead or hung server becomes one plain MTWError."""
        request = urllib.request.Request(f"{self.url}/completion", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=ANSWER_TIMEOUT_S) as response:
                return dict(json.loads(response.read()))
        except (OSError, urllib.error.URLError, json.JSONDecodeError) as exc:
            raise MTWError(f"llama.cpp stopped answering ({exc}).", "The answers come from PyTorch instead.",
                           code="engine_failed") from exc


def slot_context(prompt_tokens: list[int], max_new_tokens: int) -> int:
    """Context each slot needs: the longest prompt plus the answer cap, rounded up to 256."""
    need = max(prompt_tokens, default=0) + max_new_tokens + 16
    return 256 * -(-need // 256)


class LlamaAnswers:
    """A Generator over one running LlamaServer: greedy, seeded, the adapter's scale set per request."""

    def __init__(self, server: LlamaServer, tokenizer: Any, *, max_new_tokens: int, slots: int = SLOTS,
                 progress: Progress | None = None) -> None:
        self.server, self.tokenizer, self.max_new_tokens = server, tokenizer, max_new_tokens
        self.slots, self.progress = slots, progress
        self.stops = set(end_ids(tokenizer))

    @staticmethod
    def render(tokenizer: Any, prompt: str) -> list[int]:
        """The prompt as the model reads it: its own chat template, tokenized as in training."""
        return list(tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"])

    def answer(self, prompt: str, which: str) -> Generation:
        """One answer; it stopped when the model ended its turn (an end-of-generation token), not at the cap."""
        body: dict[str, Any] = {"prompt": self.render(self.tokenizer, prompt), "n_predict": self.max_new_tokens,
                                "temperature": 0, "seed": 0, "cache_prompt": True, "return_tokens": True}
        if self.server.lora is not None:
            body["lora"] = [{"id": 0, "scale": SCALES[which]}]
        out = self.server.completion(body)
        tokens = [t for t in out.get("tokens") or [] if t not in self.stops]
        return Generation(str(out.get("content", "")).strip(), out.get("stop_type") in ("eos", "word"),
                          len(tokens) if out.get("tokens") is not None else int(out.get("tokens_predicted", 0)))

    def __call__(self, prompts: list[str], which: str) -> list[Generation]:
        done = 0
        what = f"{which} answers"
        if self.progress is not None:
            self.progress(what, 0, len(prompts))
        results: list[Generation | None] = [None] * len(prompts)
        with ThreadPoolExecutor(max_workers=self.slots) as pool:
            futures = {pool.submit(self.answer, p, which): i for i, p in enumerate(prompts)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                done += 1
                if self.progress is not None:
                    self.progress(what, done, len(prompts))
        return [r for r in results if r is not None]


def llama_answers(run_dir: Path, tokenizer: Any, prompts: list[TestPrompt], max_new_tokens: int,
                  progress: Progress | None, notes: list[str], layout: str | None = None
                  ) -> dict[str, list[Generation]] | None:
    """Base and tuned answers from llama.cpp, or None when it cannot give them here (then PyTorch answers).

    None without a note when the base is not a GGUF or llama-server is not installed; with a note when it was
    tried and failed (the evaluation goes on either way).
    """
    from tools.evaluate.limits import free_threads
    from tools.export.merge import LORA_CONVERTER, find_converter

    gguf, server = base_gguf(run_dir), find_llama_server()
    if gguf is None or server is None:
        return None
    converter = find_converter(script=LORA_CONVERTER)
    if converter is None:
        notes.append(f"llama-server is installed but not llama.cpp's {LORA_CONVERTER} (LLAMA_CPP_DIR), so the "
                     "answers come from PyTorch on this machine, which is slower.")
        return None
    try:
        if progress is not None:
            progress("converting the adapter for llama.cpp", 0, 0)
        lora = adapter_gguf(run_dir, gguf, converter)
        texts = [p.prompt for p in prompts]
        return answer_sides(server, gguf, lora, tokenizer, texts, max_new_tokens, progress,
                            layout=layout or ("pair" if free_threads() >= 2 else "one"))
    except (MTWError, OSError, ValueError, KeyError) as exc:
        # a GGUF transformers cannot read, a converter that fails: the evaluation goes on without llama.cpp
        why = exc.message if isinstance(exc, MTWError) else str(exc)
        notes.append(f"llama.cpp could not give the answers ({why}), so they come from PyTorch on this machine, "
                     "which is slower.")
        return None


def answer_sides(server: Path, gguf: Path, lora: Path, tokenizer: Any, prompts: list[str], max_new_tokens: int,
                 progress: Progress | None, *, layout: str = "pair", threads: int | None = None,
                 slots: int | None = None) -> dict[str, list[Generation]]:
    """Every prompt answered by base and tuned, laid out as `layout` says (LAYOUTS), `slots` answers side by side
    in each server (SLOTS by default; llama.cpp's batches change a few late tokens, so one slot is the way to get
    answers that do not depend on which prompts shared a batch)."""
    from tools.evaluate.limits import free_threads

    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}: one of {', '.join(LAYOUTS)}")
    slots = max(1, min(slots or SLOTS, len(prompts)))
    context = slot_context([len(LlamaAnswers.render(tokenizer, p)) for p in prompts], max_new_tokens)
    free = threads or free_threads()
    if layout == "one":
        with LlamaServer(server, gguf, lora=lora, threads=free, slots=slots, slot_context=context) as running:
            answers = LlamaAnswers(running, tokenizer, max_new_tokens=max_new_tokens, slots=slots, progress=progress)
            return {v: answers(prompts, v) for v in SCALES}
    both = _both_sides(progress, len(prompts))
    each = max(1, free // 2)
    with LlamaServer(server, gguf, lora=None, threads=each, slots=slots, slot_context=context) as plain, \
            LlamaServer(server, gguf, lora=lora, threads=each, slots=slots, slot_context=context) as tuned, \
            ThreadPoolExecutor(max_workers=2) as pool:
        # the tuned server sets the adapter's scale per request, as the one server does: the same answers
        sides = {"base": plain, "tuned": tuned}
        futures = {v: pool.submit(LlamaAnswers(sides[v], tokenizer, max_new_tokens=max_new_tokens, slots=slots,
                                               progress=both), prompts, v) for v in SCALES}
        return {v: f.result() for v, f in futures.items()}


def _both_sides(progress: Progress | None, n: int) -> Progress | None:
    """One progress line for two sides answered at once: 'base and tuned answers', done of 2 × n."""
    if progress is None:
        return None
    done = {"base answers": 0, "tuned answers": 0}
    lock = threading.Lock()

    def report(what: str, count: int, total: int) -> None:
        with lock:
            done[what] = count
            progress("base and tuned answers", sum(done.values()), 2 * n)

    return report
