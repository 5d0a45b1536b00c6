"""A TEST DOUBLE of the Hugging Face Hub: a loopback HTTP server speaking the part of the Hub's API that
huggingface_hub 2.4 uses to describe a model repo and download its files.

It is not the Hub and serves no real model: its repos hold whatever a test puts there (by default the
built-in tiny-random model saved under a made-up id). It records every request so tests can assert on
them. Endpoints, as huggingface_hub calls them:

- `GET /api/models/{repo}[/revision/{rev}]?blobs=true` → model info: `sha`, `gated`, `siblings` with sizes
- `HEAD|GET /{repo}/resolve/{rev}/{file}` → `X-Repo-Commit`, `ETag`, `Content-Length`; files stored in LFS
  answer `302` to a second loopback port (the "CDN") with `X-Linked-Etag` / `X-Linked-Size`, as the Hub does
- `GET /cdn/{sha256}` → the bytes, honouring `Range: bytes=N-` with `206` (resumed downloads) unless told to
  ignore it (`ignore_range`: a plain `200` with the whole file, as some proxies answer)
- errors carry the Hub's `X-Error-Code`: `RepoNotFound` (404), `GatedRepo` (401 without a token, 403 with a
  wrong one), `EntryNotFound`, `RevisionNotFound`

It never sends `X-Xet-Hash`, so huggingface_hub takes its plain HTTP download path. Scripted faults:
`cut_once` drops the connection partway through a file's next download.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

TINY_CHAT = "test-org/tiny-chat"
GATED = "test-org/gated-chat"
TOKEN = "hf_test_double_token"
"""The one token a gated repo of the double accepts."""
DECOYS = {
    "README.md": b"# tiny-chat (served by the Hugging Face Hub test double)\n",
    ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
    "original/consolidated.00.pth": b"decoy: original checkpoint",
    "pytorch_model.bin": b"decoy: the same weights as .bin",
    "tiny-chat-q4_k_m.gguf": b"decoy: gguf",
    "onnx/model.onnx": b"decoy: onnx",
    "flax_model.msgpack": b"decoy: flax",
    "tf_model.h5": b"decoy: tensorflow",
    "model.pt": b"decoy: torch pickle",
}
"""Files real repos carry that training does not need: a download must leave them on the Hub."""


@lru_cache(maxsize=1)
def tiny_chat_files() -> dict[str, bytes]:
    """A small real model repo: the built-in tiny-random model and its tokenizer, saved as transformers saves them."""
    from tools.models.catalog import build_tiny_random, tiny_random_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        # wide enough that its weights file is some megabytes, so a download can be cut off part way through
        build_tiny_random(seed=0, hidden_size=256, intermediate_size=2048).save_pretrained(tmp,
                                                                                          safe_serialization=True)
        tiny_random_tokenizer().save_pretrained(tmp)
        return {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubRepo:
    """One model repo of the double."""

    files: dict[str, bytes]
    gated: bool = False
    sha: str = ""

    def __post_init__(self) -> None:
        if not self.sha:
            digest = hashlib.sha1(b"".join(n.encode() + _git_sha1(b).encode() for n, b in sorted(self.files.items())))
            self.sha = digest.hexdigest()

    @staticmethod
    def in_lfs(name: str) -> bool:
        """Weights and other binaries live in LFS on the Hub (and are served by its CDN)."""
        return name.endswith((".safetensors", ".bin", ".gguf", ".onnx", ".msgpack", ".h5", ".pt", ".pth"))


@dataclass
class Recorded:
    """One request the double received."""

    method: str
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    sent: int = 0
    """Body bytes the double sent back for a file download (a client that stopped early read fewer)."""


@dataclass
class HubDouble:
    """Scriptable state of the double; start() binds two free loopback ports (the Hub and its CDN)."""

    repos: dict[str, HubRepo] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    cuts: dict[str, list[int]] = field(default_factory=dict)
    ignore_range: bool = False
    """Answer every download with 200 and the whole file, whatever Range asks for."""
    _servers: list[ThreadingHTTPServer] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # scripting ---------------------------------------------------------------
    def add_repo(self, repo_id: str, files: dict[str, bytes], gated: bool = False) -> HubRepo:
        self.repos[repo_id] = HubRepo(dict(files), gated=gated)
        return self.repos[repo_id]

    def with_tiny_chat(self) -> HubDouble:
        """Serve the tiny-random model (plus decoys) as TINY_CHAT, and a gated copy as GATED."""
        files = {**tiny_chat_files(), **DECOYS}
        self.add_repo(TINY_CHAT, files)
        self.add_repo(GATED, files, gated=True)
        return self

    def cut_once(self, filename: str, after_bytes: int) -> None:
        """Drop the connection once, `after_bytes` into the next download of `filename` (calls queue up)."""
        self.cuts.setdefault(filename, []).append(after_bytes)

    def fetched(self) -> list[str]:
        """File names whose bytes were requested (GET on /resolve or on the CDN), in order."""
        return [self._file_of(r) for r in self.requests if self._is_download(r)]

    def downloads(self, filename: str) -> list[Recorded]:
        """The GET requests for `filename`'s bytes (on /resolve or on the CDN), in order."""
        return [r for r in self.requests if self._is_download(r) and self._file_of(r) == filename]

    @staticmethod
    def _is_download(r: Recorded) -> bool:
        return r.method == "GET" and ("/resolve/" in r.path or r.path.startswith("/cdn/"))

    def _file_of(self, r: Recorded) -> str:
        if "/resolve/" in r.path:
            return unquote(r.path.split("/resolve/", 1)[1].split("/", 1)[1])
        return self._name_of(r.path.rsplit("/", 1)[-1])

    def described(self) -> list[str]:
        """File names that got a HEAD (metadata) request."""
        return [unquote(r.path.split("/resolve/", 1)[1].split("/", 1)[1])
                for r in self.requests if r.method == "HEAD" and "/resolve/" in r.path]

    # lifecycle ---------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._servers, "double not started"
        h, p = self._servers[0].server_address[:2]
        return f"http://{h}:{p}"

    @property
    def cdn_url(self) -> str:
        h, p = self._servers[1].server_address[:2]
        return f"http://{h}:{p}"

    def start(self) -> HubDouble:
        for _ in range(2):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []

    # behaviour ---------------------------------------------------------------
    def _name_of(self, sha256: str) -> str:
        for repo in self.repos.values():
            for name, data in repo.files.items():
                if hashlib.sha256(data).hexdigest() == sha256:
                    return name
        return ""

    def _blob(self, sha256: str) -> bytes | None:
        for repo in self.repos.values():
            for data in repo.files.values():
                if hashlib.sha256(data).hexdigest() == sha256:
                    return data
        return None

    def _take_cut(self, name: str) -> int | None:
        with self._lock:
            queued = self.cuts.get(name)
            return queued.pop(0) if queued else None


_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_INFO = re.compile(r"^/api/models/([^/]+/[^/]+?)(?:/revision/([^/]+))?$")


def _handler_for(d: HubDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        recorded: Recorded

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        # plumbing
        def _send(self, status: int, headers: dict[str, str], body: bytes = b"", head: bool = False) -> None:
            self.send_response(status)
            for k, v in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(k, v)
            self.end_headers()
            if not head and body:
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str, head: bool = False, **extra: str) -> None:
            body = json.dumps({"error": message}).encode()
            self._send(status, {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message,
                                **extra}, body, head)

        def _record(self) -> str:
            path = urlsplit(self.path).path
            self.recorded = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
            d.requests.append(self.recorded)
            return path

        # endpoints
        def do_GET(self) -> None:
            path = self._record()
            if m := _INFO.match(path):
                self._model_info(m.group(1), m.group(2))
            elif m := _RESOLVE.match(path):
                self._resolve(m.group(1), m.group(2), unquote(m.group(3)), head=False)
            elif path.startswith("/cdn/"):
                self._cdn(path.rsplit("/", 1)[-1], head=False)
            else:
                self._error(404, "NotFound", "not found")

        def do_HEAD(self) -> None:
            path = self._record()
            if m := _RESOLVE.match(path):
                self._resolve(m.group(1), m.group(2), unquote(m.group(3)), head=True)
            elif path.startswith("/cdn/"):
                self._cdn(path.rsplit("/", 1)[-1], head=True)
            else:
                self._error(404, "NotFound", "not found", head=True)

        def _model_info(self, repo_id: str, revision: str | None) -> None:
            repo = d.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return
            if revision not in (None, "main", repo.sha):
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return
            blobs = parse_qs(urlsplit(self.path).query).get("blobs", ["false"])[0].lower() in ("true", "1")
            siblings = []
            for name, data in sorted(repo.files.items()):
                sib: dict[str, Any] = {"rfilename": name}
                if blobs:
                    sib.update(size=len(data), blobId=_git_sha1(data))
                    if repo.in_lfs(name):
                        sib["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                      "pointerSize": 134}
                siblings.append(sib)
            info = {"_id": repo.sha[:24], "id": repo_id, "modelId": repo_id, "author": repo_id.split("/")[0],
                    "sha": repo.sha, "private": False, "disabled": False, "gated": "manual" if repo.gated else False,
                    "lastModified": "2026-01-01T00:00:00.000Z", "tags": ["transformers", "safetensors"],
                    "library_name": "transformers", "siblings": siblings}
            self._send(200, {"Content-Type": "application/json"}, json.dumps(info).encode())

        def _resolve(self, repo_id: str, revision: str, name: str, head: bool) -> None:
            repo = d.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found", head)
                return
            if repo.gated and self.headers.get("Authorization") != f"Bearer {TOKEN}":
                status = 403 if self.headers.get("Authorization") else 401
                self._error(status, "GatedRepo", f"Access to model {repo_id} is restricted. You must have access to "
                            "it and be authenticated to access it. Please log in.", head)
                return
            if revision not in ("main", repo.sha):
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
                return
            data = repo.files.get(name)
            if data is None:
                self._error(404, "EntryNotFound", f"{name} does not exist", head, **{"X-Repo-Commit": repo.sha})
                return
            common = {"X-Repo-Commit": repo.sha, "Accept-Ranges": "bytes"}
            if repo.in_lfs(name):
                sha256 = hashlib.sha256(data).hexdigest()
                self._send(302, {**common, "Location": f"{d.cdn_url}/cdn/{sha256}", "ETag": f'"{_git_sha1(data)}"',
                                 "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data))}, b"", head)
                return
            self._bytes(data, {**common, "ETag": f'"{_git_sha1(data)}"'}, name, head)

        def _cdn(self, sha256: str, head: bool) -> None:
            data = d._blob(sha256)
            if data is None:
                self._error(404, "NotFound", "no such blob", head)
                return
            self._bytes(data, {"ETag": f'"{sha256}"', "Accept-Ranges": "bytes"}, d._name_of(sha256), head)

        def _bytes(self, data: bytes, headers: dict[str, str], name: str, head: bool) -> None:
            start = 0
            rng = None if d.ignore_range else re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            status = 200
            if rng:
                start, status = int(rng.group(1)), 206
                headers = {**headers, "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            body = data[start:]
            headers = {**headers, "Content-Type": "application/octet-stream", "Content-Length": str(len(body))}
            cut = None if head else d._take_cut(name)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if head:
                return
            self.recorded.sent = len(body[:cut])  # set first: the client may finish reading before this thread goes on
            try:
                self.wfile.write(body[:cut])
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):  # the client stopped reading (Ctrl-C)
                self.close_connection = True
                return
            if cut is not None:  # part of the body, then the connection drops: a network that fails mid-file
                self.close_connection = True
                self.connection.shutdown(2)

    return Handler
