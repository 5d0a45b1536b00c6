"""The chat server: its own folder and chainlit config under MTW_HOME, the listening socket, and the access hooks."""

import asyncio
import errno
import json
import os
import re
import shutil
import socket
import sqlite3
import string
import tempfile
from pathlib import Path
from typing import Any

from assistant.access import Guard, Policy, origins, signed_in, ui_token
from assistant.uploads import DEFAULT_MAX_UPLOAD_MB, safe_name
from tools.dataset.sniff import upload_refusal
from tools.fileio import atomic_write_text, copy_private, private_process

APP_FILE = Path(__file__).with_name("app.py")
UI_SOURCE = Path(__file__).with_name("ui")
LOCAL_USER = "local"


class PortInUse(OSError):
    """Something is really listening on the port (not just connections closing from a previous run)."""


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on HOST:PORT with address reuse, so a restart right after Ctrl-C or a crash works."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(exc.errno, f"port {port} on {host} is in use") from exc
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def app_root(home: Path, host: str, port: int, max_upload_mb: int) -> Path:
    """This server's own chainlit folder, MTW_HOME/ui/<pid>: config, translations and chainlit's scratch files.

    One per process, so a second wizard stopping (chainlit deletes its files folder then) never touches this one;
    folders left by wizards that are no longer running are removed.
    """
    base = home / "ui"
    base.mkdir(parents=True, exist_ok=True)
    for old in base.iterdir():
        if old.name.isdigit() and int(old.name) != os.getpid() and not _pid_alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    root = base / str(os.getpid())
    template = string.Template((UI_SOURCE / "chainlit.toml").read_text(encoding="utf-8"))
    config = template.safe_substitute(allow_origins=json.dumps(origins(host, port)), max_size_mb=max_upload_mb)
    atomic_write_text(root / ".chainlit" / "config.toml", config)
    # new owner-only copies (shutil.copytree would give them the installed package's modes)
    for src in [UI_SOURCE / "chainlit.md", *(UI_SOURCE / "public").rglob("*")]:
        if src.is_file():  # public/: the stylesheet the config names
            copy_private(src, root / src.relative_to(UI_SOURCE))
    return root


def serve(sock: socket.socket, rules: Policy, home: Path) -> None:
    """Run chainlit's server for the wizard app on SOCK under RULES (blocks until stopped)."""
    global _rules
    _rules = rules
    private_process()  # chainlit's scratch files, the databases and every upload copy: owner-only
    try:
        root = app_root(home, rules.host, rules.port, rules.max_upload_bytes // 2**20)
    except OSError:  # MTW_HOME not writable: the wizard still runs (and says so), its scratch files in a temp dir
        root = app_root(Path(tempfile.mkdtemp(prefix="mtw-ui-")), rules.host, rules.port,
                        rules.max_upload_bytes // 2**20)
    os.environ.update({"CHAINLIT_APP_ROOT": str(root), "CHAINLIT_COOKIE_SAMESITE": "strict",
                       "CHAINLIT_HOST": rules.host, "CHAINLIT_PORT": str(rules.port)})
    import uvicorn
    from chainlit.auth import ensure_jwt_secret
    from chainlit.cli import assert_app
    from chainlit.config import config, load_module
    from chainlit.server import app

    config.run.host, config.run.port, config.run.headless = rules.host, rules.port, True
    config.run.module_name = str(APP_FILE)
    load_module(str(APP_FILE))
    ensure_jwt_secret()
    assert_app()
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", ws_per_message_deflate=True))
    asyncio.run(server.serve(sockets=[sock]))


_rules: Policy | None = None


def policy() -> Policy:
    """The rules `mtw ui` started this server with (loopback with the install's token otherwise)."""
    if _rules is not None:
        return _rules
    from tools.settings import get_settings

    settings = get_settings()
    return Policy(host=settings.host, port=settings.port, token=ui_token(settings.home),
                  max_upload_bytes=DEFAULT_MAX_UPLOAD_MB * 2**20, home=settings.home)


def ensure_user(identifier: str) -> None:
    """Create the chat user row once (INSERT OR IGNORE), so simultaneous first logins cannot race to insert it."""
    from datetime import UTC, datetime
    from uuid import uuid4

    from assistant.chat_store import chat_db_path

    with sqlite3.connect(chat_db_path(), timeout=30) as db:
        db.execute('INSERT OR IGNORE INTO users ("id", "identifier", "metadata", "createdAt") VALUES (?, ?, ?, ?)',
                   (str(uuid4()), identifier, "{}", datetime.now(UTC).isoformat()))


def install(chat_history: bool) -> None:
    """Hook the wizard into chainlit: sign-in (token or password), the guard, safe uploads, owned stored files."""
    import chainlit as cl
    from chainlit.server import app

    rules = policy()
    if rules.token is not None:
        if chat_history:
            ensure_user(LOCAL_USER)

        @cl.header_auth_callback
        async def token_user(headers: Any) -> cl.User | None:
            """The token's holder is the one local user; the guard already refused everyone else."""
            ok = signed_in(rules, {k.lower(): v for k, v in headers.items()})
            return cl.User(identifier=LOCAL_USER, metadata={"role": "owner", "provider": "token"}) if ok else None
    else:
        from assistant.passwords import sign_in
        from tools.settings import get_settings

        home = rules.home or get_settings().home

        @cl.password_auth_callback
        async def password_user(username: str, password: str) -> cl.User | None:
            """A user set with `mtw ui --set-password`; the session carries a stamp the guard checks every time."""
            stamp = await asyncio.to_thread(sign_in, home, username, password)
            if stamp is None:
                return None
            if chat_history:
                await asyncio.to_thread(ensure_user, username)
            return cl.User(identifier=username, metadata={"role": "owner", "provider": "password", "session": stamp})

    import chainlit.server

    # chainlit answers someone else's thread with 401 (saying it exists); every thread route asks this one check
    chainlit.server.is_thread_author = own_thread
    chainlit.server.get_html_template = _local_page(chainlit.server.get_html_template)
    router = _routes(rules, chat_history)
    # first in line: chainlit's own upload route and its catch-all page route would otherwise answer
    app.router.routes[0:0] = router.routes
    app.add_middleware(Guard, policy=rules)


_EXTERNAL_LINK = re.compile(r"<link\b[^>]*\bhref=\"https?://[^>]*>\s*", re.I)


def _local_page(template: Any) -> Any:
    """Chainlit's page without what it loads from the internet (Google's fonts, KaTeX's stylesheet from a CDN):
    a local tool that tells every page load to other hosts is not local (the page falls back to system fonts;
    maths rendering is off)."""

    def local(root_path: str) -> str:
        return _EXTERNAL_LINK.sub("", template(root_path))

    return local


async def own_thread(username: str, thread_id: str) -> bool:
    """Pass when USERNAME wrote the thread; another user's thread, an unowned or a missing one are all 404."""
    from chainlit.data import get_data_layer
    from fastapi import HTTPException

    data = get_data_layer()
    if data is None:
        raise HTTPException(status_code=404, detail="Conversation history is off, so there is no such conversation")
    try:
        author = await data.get_thread_author(thread_id)
    except ValueError:  # chainlit's SQL layer raises for a thread with no author (or none at all)
        author = None
    if author != username:
        raise HTTPException(status_code=404, detail="Thread not found")
    return True


def _routes(rules: Policy, chat_history: bool) -> Any:
    # FastAPI reads these handlers' annotations at definition, so this module keeps them evaluated (no __future__)
    from chainlit.server import UserParam, validate_file_upload
    from chainlit.session import WebsocketSession
    from fastapi import APIRouter, HTTPException, Request, UploadFile
    from fastapi.responses import FileResponse, JSONResponse

    from assistant.chat_store import FILES_ROUTE, stored_file

    router = APIRouter()
    if rules.token is None:
        _sign_in_routes(router, rules)

    @router.post("/project/file")
    async def upload(current_user: UserParam, session_id: str, file: UploadFile,
                     ask_parent_id: str | None = None) -> JSONResponse:
        """Chainlit's upload, with a safe base name and a check of what the file really is before it is kept."""
        session = WebsocketSession.get_by_id(session_id)
        if not session or (current_user and (not session.user or session.user.identifier != current_user.identifier)):
            raise HTTPException(status_code=404, detail="Session not found")
        spec = session.files_spec.get(ask_parent_id) if ask_parent_id else None
        if ask_parent_id and not spec:
            raise HTTPException(status_code=404, detail="Parent message not found")
        try:
            name = safe_name(file.filename or "")
            content = await file.read()
            if why := upload_refusal(name, content):
                raise HTTPException(status_code=400, detail=why)
            try:
                validate_file_upload(file, spec=spec)
            except ValueError as exc:
                raise HTTPException(status_code=400, detail=str(exc)) from exc
            mime = file.content_type or "application/octet-stream"
            return JSONResponse(content=await session.persist_file(name=name, content=content, mime=mime))
        finally:
            await file.close()

    if chat_history:
        @router.get(FILES_ROUTE + "/{key:path}")
        async def stored(key: str, request: Request) -> FileResponse:
            """A stored chat file, only for the user whose conversation it belongs to (everyone else: 404)."""
            owner = await _user_id(rules, request)
            path = stored_file(key)
            if owner is None or path is None or not key.startswith(owner + "/"):
                raise HTTPException(status_code=404, detail="No such file")
            # a chart is stored as JSON under a name without a suffix: the page parses it only if told it is JSON
            json_like = await asyncio.to_thread(_starts_like_json, path)
            return FileResponse(path, media_type="application/json" if json_like else None)

    return router


def _sign_in_routes(router: Any, rules: Policy) -> None:
    """Password sign-in in front of chainlit's: wrong guesses throttled (429), signing out ends the session."""
    from chainlit.config import config
    from chainlit.server import _authenticate_user
    from chainlit.server import logout as chainlit_logout
    from fastapi import Depends, HTTPException, Request, Response
    from fastapi.security import OAuth2PasswordRequestForm

    from assistant.passwords import Throttle, end_sessions, too_many

    assert rules.home is not None, "password sign-in keeps its users in MTW_HOME"
    home = rules.home
    throttle = Throttle()

    @router.post("/login")
    async def login(request: Request, form: OAuth2PasswordRequestForm = Depends()) -> Response:
        """Check the password unless this user or this address guessed wrong too often lately."""
        client = request.client.host if request.client else ""
        wait = throttle.wait_s(form.username, client)
        if wait:
            raise HTTPException(status_code=429, detail=too_many(wait), headers={"Retry-After": str(wait)})
        assert config.code.password_auth_callback is not None
        user = await config.code.password_auth_callback(form.username, form.password)
        if user is None:
            throttle.failed(form.username, client)
        else:
            throttle.succeeded(form.username)
        response: Response = await _authenticate_user(request, user)
        return response

    @router.post("/logout")
    async def logout(request: Request, response: Response) -> Any:
        """Sign out for real: the session (and the user's others) stop working, not just this cookie."""
        from chainlit.auth.cookie import get_token_from_cookies
        from chainlit.auth.jwt import decode_jwt

        try:
            identifier = decode_jwt(get_token_from_cookies(dict(request.cookies)) or "").identifier
        except Exception:  # no session, or one that no longer counts: nothing to end
            identifier = None
        if identifier:
            await asyncio.to_thread(end_sessions, home, identifier)
            await _close_chats(lambda user: user == identifier)
        return await chainlit_logout(request, response)


async def _close_chats(whose: Any) -> None:
    """Disconnect the open chats of the users WHOSE(identifier) picks: an ended session keeps no open socket."""
    from chainlit.server import sio
    from chainlit.session import ws_sessions_sid

    for sid, session in list(ws_sessions_sid.items()):
        if session.user is not None and whose(session.user.identifier):
            await sio.disconnect(sid)


async def signed_out() -> bool:
    """True (and the chat disconnected) when this chat's password session ended after its socket opened: a new
    password, or the user removed. The page then shows the sign-in again."""
    from chainlit.auth.jwt import decode_jwt
    from chainlit.context import context
    from chainlit.session import WebsocketSession

    from assistant.passwords import session_valid

    rules = policy()
    if rules.token is not None or rules.home is None:
        return False
    session = context.session
    try:
        user = decode_jwt(session.token or "")
        valid = await asyncio.to_thread(session_valid, rules.home, user.identifier,
                                        str((user.metadata or {}).get("session", "")))
    except Exception:  # expired or unreadable: not a session any more
        valid = False
    if not valid and isinstance(session, WebsocketSession):
        from chainlit.server import sio

        await sio.disconnect(session.socket_id)
    return not valid


def _starts_like_json(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(1) in (b"{", b"[")


async def _user_id(rules: Policy, request: Any) -> str | None:
    """The signed-in user's id in the chat database, or None."""
    from chainlit.auth.cookie import get_token_from_cookies
    from chainlit.auth.jwt import decode_jwt
    from chainlit.data import get_data_layer

    identifier = LOCAL_USER
    if rules.token is None:
        try:
            identifier = decode_jwt(get_token_from_cookies(dict(request.cookies)) or "").identifier
        except Exception:  # no login, or an expired / foreign one
            return None
    data = get_data_layer()
    user = await data.get_user(identifier) if data else None
    return user.id if user else None
