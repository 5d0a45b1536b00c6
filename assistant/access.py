"""Who may talk to the chat server: the per-install token, password sessions, and the Host/Origin/size guard."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import socket
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.exceptions import HTTPException

TOKEN_FILE = "ui_token"
UPLOAD_PATH = "/project/file"
FILE_PATHS = ("/project/file/", "/mtw-files/")
"""Where the server hands back files a user (or a data row) supplied: every answer there is inert."""
INERT_TYPES = {"application/json", "application/pdf", "text/csv", "text/plain", "text/markdown",
               "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
"""Types a browser never runs; anything else (HTML, SVG, XML, scripts) is handed back as plain bytes."""
FILE_CSP = b"sandbox; default-src 'none'"
PAGE_CSP = (b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            b"img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; media-src 'self' blob:; "
            b"worker-src 'self' blob:; frame-src 'self' blob:; object-src 'none'; base-uri 'none'; "
            b"form-action 'self'; frame-ancestors 'none'")
"""The page loads, fetches and frames only from the wizard itself: even a link or an image that slipped into a
message could not reach another host (no beacon, no request into the user's network)."""
# paths the password login page needs before anyone has signed in; chainlit guards its own API behind them
LOGIN_PATHS = ("/login", "/logout", "/auth/config", "/project/translations", "/favicon", "/logo", "/health")
SIGNED_IN_PREFIXES = ("/project/", "/ws/", "/mtw-files/", "/feedback", "/mcp", "/set-session-cookie")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`: only this machine can connect."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ui_token(home: Path) -> str:
    """The per-install secret in MTW_HOME/ui_token (owner-only), created on first use."""
    path = home / TOKEN_FILE
    if not path.is_file():
        home.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two first starts at once agree on one token (the loser reads the winner's)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def session_value(token: str, port: int) -> str:
    """What the session cookie holds: derived from the token, so a new token signs everyone out."""
    return hmac.new(token.encode(), f"mtw-session:{port}".encode(), hashlib.sha256).hexdigest()


def cookie_name(port: int) -> str:
    """Cookies ignore ports: two wizards on one machine each keep their own."""
    return f"mtw_session_{port}"


def _machine_names() -> set[str]:
    import psutil

    names = {"localhost", "127.0.0.1", "::1", socket.gethostname().lower(), socket.getfqdn().lower()}
    for addrs in psutil.net_if_addrs().values():
        names.update(a.address.split("%")[0].lower() for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6))
    return names


def allowed_host_names(host: str) -> set[str]:
    """Host names a request may carry: the bound address; on loopback also localhost; on 0.0.0.0 this machine's."""
    if host in ("0.0.0.0", "::", ""):
        return _machine_names()
    names = {host.lower()}
    if is_loopback(host):
        names |= {"localhost", "127.0.0.1", "::1"}
    return names


def _split_host(value: str) -> tuple[str, int | None]:
    parts = urlsplit("//" + value)
    try:
        return (parts.hostname or "").lower(), parts.port
    except ValueError:
        return "", -1


def origins(host: str, port: int) -> list[str]:
    """The server's own origins: all CORS allows."""
    return sorted(f"http://{f'[{n}]' if ':' in n else n}:{port}" for n in allowed_host_names(host))


@dataclass
class Policy:
    """What the guard enforces for one server."""

    host: str
    """The address the server is bound to."""
    port: int
    """The port it listens on."""
    token: str | None
    """The loopback token; None when passwords (chainlit's login) guard the server."""
    max_upload_bytes: int
    """Largest upload body accepted."""
    home: Path | None = None
    """MTW_HOME, where the passwords (and so the sessions still valid) are kept."""
    names: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.names = allowed_host_names(self.host)

    def host_ok(self, value: str) -> bool:
        name, port = _split_host(value)
        return name in self.names and port in (None, self.port)

    def origin_ok(self, value: str) -> bool:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and self.host_ok(parts.netloc)


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed cookie header is just no cookie
        return {}
    return {k: m.value for k, m in jar.items()}


def signed_in(policy: Policy, headers: dict[str, str]) -> bool:
    """True when the request carries this server's session cookie (token mode) or a valid chainlit login."""
    cookies = _cookies(headers)
    if policy.token is not None:
        got = cookies.get(cookie_name(policy.port), "")
        return hmac.compare_digest(got, session_value(policy.token, policy.port))
    from chainlit.auth.cookie import get_token_from_cookies
    from chainlit.auth.jwt import decode_jwt

    from assistant.passwords import session_valid

    jwt = get_token_from_cookies(cookies)
    if not jwt or policy.home is None:
        return False
    try:
        user = decode_jwt(jwt)
    except Exception:  # expired, forged or signed by another install
        return False
    # signed out, a new password, or no longer a user: the signature alone is not enough
    return session_valid(policy.home, user.identifier, str((user.metadata or {}).get("session", "")))


class Guard:
    """Pure ASGI middleware in front of everything chainlit serves (HTTP and websockets alike).

    Wrong Host or foreign Origin -> 403; no session -> 401; an upload body over the limit -> 413 before it is read.
    """

    def __init__(self, app: Any, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        policy = self.policy
        if not policy.host_ok(headers.get("host", "")):
            await _refuse(scope, receive, send, 403, "This wizard only answers at the address it was started on.")
            return
        if "origin" in headers and not policy.origin_ok(headers["origin"]):
            await _refuse(scope, receive, send, 403, "Requests from other web sites are not allowed.")
            return
        extra_headers: list[tuple[bytes, bytes]] = []
        if not signed_in(policy, headers):
            if policy.token is not None:
                query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
                given = (query.get("token") or [""])[0]
                if scope["type"] != "http" or not hmac.compare_digest(given, policy.token):
                    await _refuse(scope, receive, send, 401,
                                  "Open the link `mtw ui` printed (it ends in ?token=…) to sign in.")
                    return
                extra_headers.append((b"set-cookie", _session_cookie(policy).encode("latin-1")))
            elif not _login_path(scope["path"]):
                await _refuse(scope, receive, send, 401, "Sign in first.")
                return
        if scope["type"] == "http" and scope["path"].endswith(UPLOAD_PATH):
            size = headers.get("content-length")
            if size is not None and (not size.isdigit() or int(size) > policy.max_upload_bytes):
                await _refuse(scope, receive, send, 413, _too_big(policy.max_upload_bytes))
                return
            receive = _capped(receive, policy.max_upload_bytes)
        if scope["type"] == "http":
            extra_headers.append((b"x-content-type-options", b"nosniff"))
            send = _inert(send) if scope["path"].startswith(FILE_PATHS) else _page_policy(send)
        if extra_headers:
            send = _with_headers(send, extra_headers)
        await self.app(scope, receive, send)


def _login_path(path: str) -> bool:
    """Open before a password sign-in: the login page's own calls and the app's page (/, /login, /thread/…)."""
    if path in LOGIN_PATHS or path.startswith(("/assets/", "/public/", "/avatars/")):
        return True
    # /user says who is signed in: a session that has ended gets 401 there too, and the page shows the sign-in
    return not path.startswith(SIGNED_IN_PREFIXES) and not path.startswith("/auth") and path != "/user"


def _session_cookie(policy: Policy) -> str:
    assert policy.token is not None
    return (f"{cookie_name(policy.port)}={session_value(policy.token, policy.port)}; Path=/; HttpOnly; "
            "SameSite=Strict; Max-Age=31536000")


def _too_big(limit: int) -> str:
    # in the unit `--max-upload-mb` takes (MiB), so a 200 MB limit reads "200 MB"
    return (f"That file is larger than {limit / 2**20:g} MB, the most the wizard accepts. Split it, or raise the "
            "limit with `mtw ui --max-upload-mb N`.")


class UploadTooLarge(HTTPException):
    """The body streamed past the limit (no Content-Length, or a lying one): a 413 with the plain message."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_too_big(limit))


def _capped(receive: Any, limit: int) -> Any:
    seen = 0

    async def counted() -> dict[str, Any]:
        nonlocal seen
        message: dict[str, Any] = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise UploadTooLarge(limit)
        return message

    return counted


def _with_headers(send: Any, extra: list[tuple[bytes, bytes]]) -> Any:
    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


def _page_policy(send: Any) -> Any:
    """Every HTML page the server answers with carries PAGE_CSP (and may not be framed by another site)."""

    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            given = dict(message.get("headers", [])).get(b"content-type", b"")
            if given.startswith(b"text/html"):
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"content-security-policy", PAGE_CSP),
                                                  (b"referrer-policy", b"no-referrer")]}
        await send(message)

    return sending


def _inert(send: Any) -> Any:
    """A stored or uploaded file downloads, never renders: an uploaded .html run on this origin could read every
    conversation. Attachment, a type no browser executes, and a sandbox with nothing allowed."""

    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", [])
                    if k.lower() not in (b"content-type", b"content-disposition", b"content-security-policy")]
            given = dict(message.get("headers", [])).get(b"content-type", b"").decode("latin-1")
            mime = given.split(";")[0].strip().lower()
            safe = (given if mime in INERT_TYPES else "application/octet-stream").encode("latin-1")
            message = {**message, "headers": [*kept, (b"content-type", safe), (b"content-disposition", b"attachment"),
                                              (b"content-security-policy", FILE_CSP)]}
        await send(message)

    return sending


async def _refuse(scope: dict[str, Any], receive: Any, send: Any, status: int, text: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": text[:120]})
        return
    body = json.dumps({"detail": text}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
