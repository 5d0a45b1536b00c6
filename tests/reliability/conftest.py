"""Reliability tests: a real `mtw ui` process (the e2e launcher), raw HTTP and websocket clients, a real Chromium."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Wizard, browser, page  # noqa: F401  (fixtures shared with the browser tests)

DOUBLE_DOWN = "http://127.0.0.1:9"  # nothing listens: the wizard runs as a guided form


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Wizard]]:
    """Start `mtw ui` with extra flags in its own MTW_HOME (or a given one); all stopped afterwards."""
    started: list[Wizard] = []

    def _launch(*args: str, home: Path | None = None, port: int | None = None, ollama: str = DOUBLE_DOWN,
                **how: Any) -> Wizard:
        w = Wizard(home or tmp_path / "home", ollama, tmp_path, args, port, **how)
        started.append(w)
        return w

    yield _launch
    for w in started:
        w.stop()


def signed_in_client(w: Wizard) -> httpx.Client:
    """An HTTP client holding the session cookie the printed link gives."""
    client = httpx.Client(base_url=w.url, timeout=30)
    client.get("/", params={"token": w.token}).raise_for_status()
    client.post("/auth/header").raise_for_status()
    return client


def socket_session(w: Wizard, cookies: str, origin: str | None = None,
                   thread_id: str | None = None) -> tuple[object, str]:
    """Open chainlit's socket.io session over a raw websocket (Engine.IO v4); returns (socket, session id)."""
    from websockets.sync.client import connect

    session_id = str(uuid.uuid4())
    ws = connect(f"ws://127.0.0.1:{w.port}/ws/socket.io/?EIO=4&transport=websocket",
                 additional_headers={"Cookie": cookies}, origin=origin or w.url, open_timeout=30)  # type: ignore[arg-type]
    assert str(ws.recv(timeout=30)).startswith("0")  # engine.io open
    ws.send("40" + json.dumps({"sessionId": session_id, "clientType": "webapp", "threadId": thread_id}))
    reply = str(ws.recv(timeout=30))
    assert reply.startswith("40"), reply
    return ws, session_id


def cookie_header(client: httpx.Client) -> str:
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items())
