"""For the Ollama TEST DOUBLE: serve a created model with llama.cpp's llama-server, the way Ollama >= 0.30 does.

The server is started with `--no-jinja --chat-template chatml` and never `--special`; each chat is rendered by the
model's Go TEMPLATE (Go's own text/template) and sent to `/completion`, so control tokens the model emits come
back as empty text, as they do in Ollama. Only for tests: found through LLAMA_CPP_DIR.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OLLAMA_DEFAULTS: dict[str, Any] = {"num_predict": -1, "temperature": 0.8, "top_k": 40, "top_p": 0.9,
                                   "repeat_penalty": 1.1, "repeat_last_n": 64}
"""The sampling options Ollama's runner uses when neither the request nor the Modelfile sets them."""


def llama_cpp_dir() -> Path | None:
    """The built llama.cpp named by LLAMA_CPP_DIR (with bin/llama-server), or None."""
    root = os.environ.get("LLAMA_CPP_DIR")
    if root and (Path(root) / "bin" / "llama-server").is_file():
        return Path(root)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """One created model running in its own llama-server."""

    process: subprocess.Popen[bytes]
    port: int
    template: str
    system: str
    parameters: dict[str, Any]

    def request_body(self, prompt: str, options: dict[str, Any], fmt: Any = None, *, stream: bool = False
                     ) -> dict[str, Any]:
        """The /completion body for a chat's options, as Ollama fills it: each option the request and the
        Modelfile leave out takes Ollama's default (its api.DefaultOptions: num_predict -1, i.e. until the context
        is full; temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.1 over the last 64 tokens), and
        `format=` (a JSON schema, or "json") becomes llama.cpp's grammar."""
        merged = {**OLLAMA_DEFAULTS, **self.parameters, **options}
        body: dict[str, Any] = {
            "prompt": prompt, "n_predict": int(merged["num_predict"]), "temperature": float(merged["temperature"]),
            "top_k": int(merged["top_k"]), "top_p": float(merged["top_p"]),
            "repeat_penalty": float(merged["repeat_penalty"]), "repeat_last_n": int(merged["repeat_last_n"]),
            "seed": int(merged.get("seed", 0)), "stop": list(merged.get("stop") or []), "cache_prompt": False,
            "stream": stream}
        if fmt:
            body["json_schema"] = {"type": "object"} if fmt == "json" else fmt
        return body

    def completion(self, prompt: str, options: dict[str, Any], fmt: Any = None) -> dict[str, Any]:
        request = self._request(self.request_body(prompt, options, fmt))
        with urllib.request.urlopen(request, timeout=600) as response:
            return dict(json.loads(response.read()))

    def stream(self, prompt: str, options: dict[str, Any], fmt: Any = None) -> Iterator[dict[str, Any]]:
        """The completion token by token (llama-server's server-sent events); closing the generator closes the
        connection, and llama-server stops generating, as Ollama's runner does when its client goes away."""
        request = self._request(self.request_body(prompt, options, fmt, stream=True))
        with urllib.request.urlopen(request, timeout=600) as response:
            for raw in response:
                line = raw.decode("utf-8", "replace").strip()
                if line.startswith("data: "):
                    yield dict(json.loads(line[len("data: "):]))

    def _request(self, body: dict[str, Any]) -> urllib.request.Request:
        return urllib.request.Request(f"http://127.0.0.1:{self.port}/completion", data=json.dumps(body).encode(),
                                      headers={"Content-Type": "application/json"})


@dataclass
class LlamaEngine:
    """Turns the double's created models into GGUF files and answers chats from llama-server."""

    root: Path
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mtw-engine-")))
    ggufs: dict[str, Path] = field(default_factory=dict)
    served: dict[str, Served] = field(default_factory=dict)

    def create(self, name: str, body: dict[str, Any], blobs: dict[str, bytes]) -> None:
        """Materialise `name` from an /api/create body: a GGUF, a safetensors folder, or a base + GGUF adapter."""
        folder = self.work / name.replace("/", "_").replace(":", "_")
        folder.mkdir(parents=True, exist_ok=True)
        files = {n: blobs[d] for n, d in (body.get("files") or {}).items()}
        adapters = {n: blobs[d] for n, d in (body.get("adapters") or {}).items()}
        for n, data in {**files, **adapters}.items():
            (folder / n).write_bytes(data)
        lora: Path | None = None
        if adapters:
            (gguf_adapter,) = adapters
            assert adapters[gguf_adapter][:4] == b"GGUF", "the engine double runs GGUF adapters only"
            lora = folder / gguf_adapter
        if body.get("from"):
            base = self.ggufs.get(str(body["from"]))
            assert base is not None, f"the double has no engine model '{body['from']}' to build on"
            model = base
        elif any(n.endswith(".gguf") for n in files):
            model = folder / next(n for n in files if n.endswith(".gguf"))
        else:
            # a safetensors folder: Ollama converts it itself; here llama.cpp's converter stands in
            model = folder / "model.gguf"
            subprocess.run([sys.executable, str(self.root / "convert_hf_to_gguf.py"), str(folder), "--outfile",
                            str(model), "--outtype", "f16"], check=True, capture_output=True)
        self.ggufs[name] = model
        self.stop(name)
        self.served[name] = self._start(model, lora, body)

    def serve(self, name: str, model: Path, *, template: str, parameters: dict[str, Any] | None = None) -> None:
        """Serve a pulled model's own GGUF under `name`, its prompts rendered by `template`."""
        self.ggufs[name] = model
        self.stop(name)
        self.served[name] = self._start(model, None, {"template": template, "parameters": parameters or {}})

    def _start(self, model: Path, lora: Path | None, body: dict[str, Any]) -> Served:
        port = _free_port()
        cmd = [str(self.root / "bin" / "llama-server"), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
               "--no-webui", "--offline", "-c", "2048", "-np", "1", "--no-jinja", "--chat-template", "chatml"]
        if lora is not None:
            cmd += ["--lora", str(lora)]
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, f"llama-server could not load {model} (exit {process.returncode})"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        params = dict(body.get("parameters") or {})
        return Served(process, port, str(body.get("template") or ""), str(body.get("system") or ""), params)

    def prompt(self, name: str, body: dict[str, Any]) -> str:
        """The chat rendered by the model's Go TEMPLATE, as Ollama renders it before it reaches the engine."""
        from tests.unit.export.gotemplate import ollama_values, render

        served = self.served[name]
        messages = [dict(m) for m in body.get("messages") or []]
        # as Ollama does: the Modelfile's SYSTEM opens a chat that brings no system prompt of its own
        if served.system and not any(m.get("role") == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": served.system})
        return render(served.template, ollama_values(messages, body.get("tools")))

    def chat(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A chat answered by the engine: content, done_reason and eval_count as Ollama reports them."""
        prompt = self.prompt(name, body)
        out = self.served[name].completion(prompt, dict(body.get("options") or {}), body.get("format"))
        return {"content": out.get("content", ""), "done_reason": _done_reason(out),
                "eval_count": int(out.get("tokens_predicted", 0)), "prompt": prompt}

    def chat_stream(self, name: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The same chat piece by piece: {"content": piece} while it writes, then {"done_reason", "eval_count"}."""
        prompt = self.prompt(name, body)
        parts = self.served[name].stream(prompt, dict(body.get("options") or {}), body.get("format"))
        try:
            for part in parts:
                if part.get("stop"):
                    yield {"done_reason": _done_reason(part), "eval_count": int(part.get("tokens_predicted", 0)),
                           "prompt": prompt}
                    return
                if part.get("content"):
                    yield {"content": part["content"]}
        finally:
            parts.close()

    def stop(self, name: str | None = None) -> None:
        """Stop one served model, or all of them."""
        for key in [name] if name else list(self.served):
            served = self.served.pop(key, None) if key else None
            if served is not None:
                served.process.terminate()
                try:
                    served.process.wait(timeout=10)
                except subprocess.TimeoutExpired:  # busy finishing a generation on a loaded machine
                    served.process.kill()
                    served.process.wait(timeout=10)


def _done_reason(out: dict[str, Any]) -> str:
    """Ollama's done_reason for llama-server's stop type: "length" when n_predict (or the context) ran out."""
    return "length" if out.get("stop_type") == "limit" else "stop"
