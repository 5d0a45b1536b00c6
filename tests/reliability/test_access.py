"""Nobody else gets in: no token or password, a foreign Host or Origin, another user — all refused."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from assistant.access import set_password
from tests.reliability.conftest import cookie_header, signed_in_client, socket_session

pytestmark = pytest.mark.reliability

# every route chainlit 2.12 serves, plus ours
ROUTES = [
    ("GET", "/"), ("GET", "/login"), ("GET", "/thread/abc"), ("GET", "/auth/config"), ("POST", "/login"),
    ("POST", "/logout"), ("POST", "/auth/jwt"), ("POST", "/auth/header"), ("GET", "/auth/oauth/github"),
    ("GET", "/user"), ("POST", "/set-session-cookie"), ("GET", "/project/translations"),
    ("GET", "/project/settings"), ("PUT", "/feedback"), ("DELETE", "/feedback"), ("POST", "/project/threads"),
    ("GET", "/project/thread/abc"), ("GET", "/project/share/abc"), ("GET", "/project/thread/abc/element/x"),
    ("PUT", "/project/element"), ("DELETE", "/project/element"), ("PUT", "/project/thread"),
    ("PUT", "/project/thread/share"), ("DELETE", "/project/thread"), ("POST", "/project/action"), ("POST", "/mcp"),
    ("DELETE", "/mcp"), ("POST", "/project/file"), ("GET", "/project/file/abc"), ("GET", "/favicon"),
    ("GET", "/logo"), ("GET", "/avatars/x"), ("GET", "/health"), ("GET", "/public/x.css"),
    ("GET", "/assets/index.js"), ("GET", "/mtw-files/local/x/chart.json"),
    ("GET", "/ws/socket.io/?EIO=4&transport=polling"),
]


def test_without_the_token_every_route_and_the_socket_answer_401(launch):
    w = launch()
    with httpx.Client(base_url=w.url, timeout=30) as client:
        refused = {f"{m} {p}": client.request(m, p).status_code for m, p in ROUTES}
        assert set(refused.values()) == {401}, refused
        assert client.get("/", params={"token": "wrong"}).status_code == 401
    with pytest.raises(InvalidStatus):
        socket_session(w, cookies="")


def test_the_token_lives_owner_only_and_becomes_a_strict_http_only_cookie(launch):
    w = launch()
    token_file = w.home / "ui_token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().strip() == w.token
    reply = httpx.get(w.url, params={"token": w.token}, timeout=30)
    cookie = reply.headers["set-cookie"]
    assert reply.status_code == 200
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    client = signed_in_client(w)
    assert client.get("/project/settings").status_code == 200
    assert "samesite=strict" in client.post("/auth/header").headers["set-cookie"].lower()
    ws, _ = socket_session(w, cookie_header(client))
    ws.close()  # type: ignore[attr-defined]


def test_a_foreign_host_or_origin_is_403_even_with_the_token(launch):
    w = launch()
    client = signed_in_client(w)
    # DNS rebinding: a page at attacker.test that resolves to 127.0.0.1
    assert client.get("/project/settings", headers={"Host": f"attacker.test:{w.port}"}).status_code == 403
    assert httpx.get(w.url, params={"token": w.token}, headers={"Host": "attacker.test"}).status_code == 403
    assert client.post("/project/threads", json={}, headers={"Origin": "http://attacker.test"}).status_code == 403
    preflight = client.options("/project/threads", headers={"Origin": "http://evil.example",
                                                             "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    own = client.get("/project/settings", headers={"Origin": w.url, "Host": f"localhost:{w.port}"})
    assert own.status_code == 200
    assert own.headers.get("access-control-allow-origin") == w.url
    with pytest.raises(InvalidStatus):
        socket_session(w, cookie_header(client), origin="http://attacker.test")


def test_off_loopback_a_password_is_required_and_each_user_sees_only_their_own(launch, tmp_path):
    home = tmp_path / "home"
    set_password(home, "alice", "alice-secret")
    set_password(home, "bob", "bob-secret")
    assert stat.S_IMODE((home / "ui_users.json").stat().st_mode) == 0o600
    assert "alice-secret" not in (home / "ui_users.json").read_text()
    w = launch("--host", "0.0.0.0", home=home)
    assert "Anyone who can reach" in Path(w.log.name).read_text()
    anon = httpx.Client(base_url=w.url, timeout=30)
    assert anon.get("/").status_code == 200  # the sign-in page
    assert anon.post("/project/threads", json={"pagination": {"first": 20}, "filter": {}}).status_code == 401
    assert anon.post("/login", data={"username": "alice", "password": "wrong"}).status_code == 401
    alice, bob = httpx.Client(base_url=w.url, timeout=30), httpx.Client(base_url=w.url, timeout=30)
    assert alice.post("/login", data={"username": "alice", "password": "alice-secret"}).status_code == 200
    assert bob.post("/login", data={"username": "bob", "password": "bob-secret"}).status_code == 200

    # alice's conversation and a stored chart, as the chat leaves them
    db = sqlite3.connect(home / "chat.db")
    alice_id = db.execute("SELECT id FROM users WHERE identifier='alice'").fetchone()[0]
    db.execute('INSERT INTO threads ("id", "createdAt", "name", "userId", "userIdentifier") '
               "VALUES ('t-alice', '2026-01-01T00:00:00Z', 'Alice project', ?, 'alice')", (alice_id,))
    db.execute('INSERT INTO threads ("id", "createdAt", "name") VALUES (\'t-nobody\', \'2026-01-01T00:00:00Z\', '
               "'Before sign-in')")
    db.execute('INSERT INTO elements ("id", "threadId", "type", "name", "objectKey") '
               "VALUES ('el-1', 't-alice', 'file', 'chart.json', ?)", (f"{alice_id}/el-1/chart.json",))
    db.commit()
    chart = home / "chat-files" / alice_id / "el-1" / "chart.json"
    chart.parent.mkdir(parents=True)
    chart.write_text('{"data": []}')
    key = f"/mtw-files/{alice_id}/el-1/chart.json"

    listing = {"pagination": {"first": 20}, "filter": {}}
    assert [t["id"] for t in alice.post("/project/threads", json=listing).json()["data"]] == ["t-alice"]
    assert bob.post("/project/threads", json=listing).json()["data"] == []
    for thread in ("t-alice", "t-nobody", "t-missing"):
        tried = {f"{method} {path}": bob.request(method, path, json=body).status_code for method, path, body in [
            ("GET", f"/project/thread/{thread}", None), ("GET", f"/project/thread/{thread}/element/el-1", None),
            ("PUT", "/project/thread", {"threadId": thread, "name": "taken"}),
            ("PUT", "/project/thread/share", {"threadId": thread, "isShared": True}),
            ("GET", f"/project/share/{thread}", None), ("DELETE", "/project/thread", {"threadId": thread})]}
        assert set(tried.values()) == {404}, tried  # as if it did not exist: not even that it does is told
    kept = db.execute("SELECT name, metadata FROM threads WHERE id='t-alice'").fetchone()
    assert kept == ("Alice project", None)  # bob could neither rename, share nor delete it
    assert alice.get("/project/thread/t-alice").json()["id"] == "t-alice"
    assert alice.get(key).status_code == 200
    assert bob.get(key).status_code == 404
    assert anon.get(key).status_code == 401
    with pytest.raises(AssertionError, match="^44"):  # connect_error: chainlit refuses bob in alice's thread
        socket_session(w, cookie_header(bob), thread_id="t-alice")
