"""A TEST DOUBLE of Ollama: a loopback HTTP server that speaks Ollama's wire API, scripted per test.

It is not a model and never ships as one: replies are whatever the test enqueues (or a canned
sentence labelled as coming from the double). It records every request so tests can assert on them.
With `engine` set (tests/fakes/llama_engine.py, when LLAMA_CPP_DIR points at a built llama.cpp), models
created through it are loaded and answered by llama.cpp's llama-server, as Ollama >= 0.30 runs them.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.llama_engine import LlamaEngine

Reply = str | dict[str, Any]


@dataclass
class Recorded:
    """One request the double received."""

    method: str
    path: str
    body: Any


@dataclass
class OllamaDouble:
    """Scriptable state of the double; start() binds a free loopback port."""

    version: str = "0.12.6"
    models: list[str] = field(default_factory=lambda: ["phi4-mini:latest"])
    chat_replies: deque[Reply] = field(default_factory=deque)
    responder: Callable[[dict[str, Any]], Reply] | None = None
    default_reply: str = "(reply from the Ollama test double)"
    chunk_delay: float = 0.0
    fail_after_chunks: int | None = None
    next_errors: deque[tuple[str, int, str]] = field(default_factory=deque)
    blobs: dict[str, bytes] = field(default_factory=dict)
    created: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    engine: LlamaEngine | None = None
    _server: ThreadingHTTPServer | None = None

    # scripting ---------------------------------------------------------------
    def enqueue(self, *replies: Reply) -> None:
        """Queue chat replies: a string (content), or a dict with content / tool_calls / done_reason."""
        self.chat_replies.extend(replies)

    def fail_next(self, path: str, status: int, error: str) -> None:
        """Make the next request to `path` answer `status` with `{"error": error}`."""
        self.next_errors.append((path, status, error))

    def requests_to(self, path: str) -> list[Recorded]:
        """Requests received on one endpoint, in order."""
        return [r for r in self.requests if r.path == path]

    # lifecycle ---------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "double not started"
        h, p = self._server.server_address[:2]
        return f"http://{h}:{p}"

    def start(self, port: int = 0) -> OllamaDouble:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # behaviour ---------------------------------------------------------------
    def _has(self, name: str) -> bool:
        want = name if ":" in name else f"{name}:latest"
        return want in self.models or name in self.models or name in self.created

    def _next_reply(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.chat_replies:
            r = self.chat_replies.popleft()
        elif self.responder is not None:
            r = self.responder(body)
        else:
            r = self.default_reply
        return {"content": r} if isinstance(r, str) else dict(r)


def _handler_for(d: OllamaDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        # plumbing
        def _body(self) -> Any:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            if self.path.startswith("/api/blobs/"):
                return raw
            try:
                return json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                return {"_raw": raw.decode("utf-8", "replace")}

        def _json(self, status: int, obj: Any) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _empty(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _stream(self, lines: list[dict[str, Any]]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i, obj in enumerate(lines):
                if d.fail_after_chunks is not None and i >= d.fail_after_chunks:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                chunk = (json.dumps(obj) + "\n").encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                if d.chunk_delay:
                    time.sleep(d.chunk_delay)
            self.wfile.write(b"0\r\n\r\n")

        def _scripted_error(self, path: str) -> bool:
            if d.next_errors and d.next_errors[0][0] == path:
                _, status, error = d.next_errors.popleft()
                self._json(status, {"error": error})
                return True
            return False

        # endpoints
        def do_HEAD(self) -> None:
            d.requests.append(Recorded("HEAD", self.path, None))
            if self.path.startswith("/api/blobs/"):
                self._empty(200 if self.path.split("/")[-1] in d.blobs else 404)
            else:
                self._empty(200)

        def do_GET(self) -> None:
            d.requests.append(Recorded("GET", self.path, None))
            if self._scripted_error(self.path):
                return
            if self.path == "/api/version":
                self._json(200, {"version": d.version})
            elif self.path == "/api/tags":
                names = d.models + [n for n in d.created if n not in d.models]
                self._json(200, {"models": [{"name": n, "model": n, "size": 1, "digest": "0" * 64,
                                              "modified_at": "2026-01-01T00:00:00Z"} for n in names]})
            elif self.path == "/api/ps":
                self._json(200, {"models": []})
            elif self.path == "/":
                self._json(200, {"status": "Ollama is running (test double)"})
            else:
                self._json(404, {"error": "not found"})

        def do_DELETE(self) -> None:
            body = self._body()
            d.requests.append(Recorded("DELETE", self.path, body))
            name = body.get("model") or body.get("name", "")
            if name in d.created or name in d.models:
                d.created.pop(name, None)
                d.models = [m for m in d.models if m != name]
                self._empty(200)
            else:
                self._json(404, {"error": f"model '{name}' not found"})

        def do_POST(self) -> None:
            body = self._body()
            d.requests.append(Recorded("POST", self.path, body))
            if self._scripted_error(self.path):
                return
            if self.path.startswith("/api/blobs/"):
                digest = self.path.split("/")[-1]
                if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
                    self._json(400, {"error": "digest mismatch"})
                    return
                d.blobs[digest] = body
                self._empty(201)
            elif self.path == "/api/show":
                name = body.get("model") or body.get("name", "")
                if not d._has(name):
                    self._json(404, {"error": f"model '{name}' not found"})
                    return
                details = {"family": "phi3", "format": "gguf"}
                if d.engine is not None and name in d.engine.served:
                    # the engine double holds every model at the f16 its converter wrote
                    details = {"family": "llama", "format": "gguf", "quantization_level": "F16"}
                self._json(200, {"modelfile": f"FROM {name}", "parameters": "", "template": "",
                                  "details": details, "model_info": {}})
            elif self.path in ("/api/chat", "/api/generate"):
                self._chat(body)
            elif self.path == "/api/pull":
                name = body.get("model") or body.get("name", "")
                lines = [{"status": "pulling manifest"}]
                lines += [{"status": f"pulling {name}", "digest": "sha256:" + "a" * 64,
                           "total": 100, "completed": c} for c in (0, 50, 100)]
                lines.append({"status": "success"})
                if name not in d.models:
                    d.models.append(name if ":" in name else f"{name}:latest")
                self._stream_or_last(body, lines)
            elif self.path == "/api/create":
                self._create(body)
            elif self.path == "/api/embed":
                inputs = body.get("input") or []
                inputs = [inputs] if isinstance(inputs, str) else inputs
                self._json(200, {"model": body.get("model"), "embeddings": [[0.0] * 8 for _ in inputs]})
            else:
                self._json(404, {"error": "not found"})

        def _stream_or_last(self, body: dict[str, Any], lines: list[dict[str, Any]]) -> None:
            if body.get("stream", True):
                self._stream(lines)
            else:
                self._json(200, lines[-1])

        def _create(self, body: dict[str, Any]) -> None:
            name = body.get("model") or body.get("name", "")
            base = body.get("from")
            if base and not d._has(base) and not str(base).startswith(("/", ".")):
                self._json(404, {"error": f"model '{base}' not found"})
                return
            for digest in list((body.get("files") or {}).values()) + list((body.get("adapters") or {}).values()):
                if digest not in d.blobs:
                    self._json(400, {"error": f"blob {digest} not found; upload it first"})
                    return
            if d.engine is not None:
                try:
                    d.engine.create(name, body, d.blobs)
                except (AssertionError, OSError, subprocess.CalledProcessError) as exc:
                    self._json(400, {"error": f"the engine could not load '{name}': {exc}"})
                    return
            d.created[name] = body
            lines = [{"status": "parsing modelfile"}, {"status": "using existing layer"},
                     {"status": "writing manifest"}, {"status": "success"}]
            self._stream_or_last(body, lines)

        def _chat(self, body: dict[str, Any]) -> None:
            name = body.get("model", "")
            if not d._has(name):
                self._json(404, {"error": f"model '{name}' not found, try pulling it first"})
                return
            r = d.engine.chat(name, body) if d.engine is not None and name in d.engine.served else d._next_reply(body)
            content = r.get("content", "")
            done_reason = r.get("done_reason", "stop")
            base = {"model": name, "created_at": "2026-01-01T00:00:00Z"}
            key = "response" if self.path == "/api/generate" else "message"

            def piece(text: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
                if key == "message":
                    msg: dict[str, Any] = {"role": "assistant", "content": text}
                    if extra:
                        msg.update(extra)
                    return {**base, "message": msg, "done": False}
                return {**base, "response": text, "done": False}

            final = {**base, "done": True, "done_reason": done_reason, "total_duration": 1,
                     "eval_count": r.get("eval_count", max(1, len(content) // 4)), "prompt_eval_count": 1}
            if key == "message":
                final["message"] = {"role": "assistant", "content": ""}
            else:
                final["response"] = ""
            if not body.get("stream", True):
                one = piece(content, {"tool_calls": r["tool_calls"]} if r.get("tool_calls") else None)
                one.update({k: v for k, v in final.items() if k not in ("message", "response")})
                self._json(200, one)
                return
            words = content.split(" ")
            lines = [piece(w if i == 0 else " " + w) for i, w in enumerate(words)] if content else []
            if r.get("tool_calls"):
                lines.append(piece("", {"tool_calls": r["tool_calls"]}))
            self._stream([*lines, final])

    return Handler
