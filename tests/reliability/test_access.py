"""Nobody else gets in: no token or password, a foreign Host or Origin, another user — all refused."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from assistant.passwords import set_password
from tests.reliability.chat import Chat
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


def test_with_passwords_each_user_sees_only_their_own(launch, tmp_path):
    home = tmp_path / "home"
    set_password(home, "alice", "alice-secret")
    set_password(home, "bob", "bob-secret")
    assert stat.S_IMODE((home / "ui_users.json").stat().st_mode) == 0o600
    assert "alice-secret" not in (home / "ui_users.json").read_text()
    w = launch("--password", home=home)  # password sign-in, bound to loopback only
    assert "The sign-in page is open to everyone on this computer" in " ".join(Path(w.log.name).read_text().split())
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


async def _closed(chat: Chat) -> None:
    """Until the server has closed CHAT's socket (it fails the test if that never happens)."""
    for _ in range(120):
        if not chat.sio.connected:
            break
        await asyncio.sleep(0.5)
    assert not chat.sio.connected
    await chat.http.aclose()


def _login(client: httpx.Client, user: str, password: str) -> httpx.Response:
    return client.post("/login", data={"username": user, "password": password})


async def test_a_password_session_ends_at_sign_out_a_new_password_or_removal_and_guessing_is_throttled(launch,
                                                                                                         tmp_path):
    home = tmp_path / "home"
    for user in ("alice", "bob", "carol"):
        set_password(home, user, f"{user} long passphrase")
    w = launch("--password", home=home)
    alice = httpx.Client(base_url=w.url, timeout=30)
    assert _login(alice, "alice", "alice long passphrase").status_code == 200
    assert alice.get("/project/settings").status_code == 200  # signed in: the normal case works
    kept = dict(alice.cookies)
    chat = await Chat(w.url, kept).open()
    await chat.wait_text("What should your model do?")

    # sign out, then replay the very same session cookie; the chat open with it is closed too
    assert alice.post("/logout").status_code == 200
    await _closed(chat)
    replay = httpx.Client(base_url=w.url, cookies=kept, timeout=30)
    assert replay.get("/project/settings").status_code == 401
    assert replay.get("/user").status_code == 401
    with pytest.raises(InvalidStatus):
        socket_session(w, cookie_header(replay))

    # a new password (`mtw ui --set-password`) ends the session made with the old one
    assert _login(alice, "alice", "alice long passphrase").status_code == 200
    before = dict(alice.cookies)
    chat = await Chat(w.url, before).open()
    await chat.wait_text("What should your model do?")
    set_password(home, "alice", "alice new passphrase")
    assert httpx.get(f"{w.url}/project/settings", cookies=before, timeout=30).status_code == 401
    await chat.say("Write user stories")  # the open chat's next message is not taken: it is closed instead
    await _closed(chat)
    assert not any("Who reads what the model produces" in t for t in chat.texts())
    assert _login(alice, "alice", "alice new passphrase").status_code == 200
    assert alice.get("/project/settings").status_code == 200

    # bob taken out of ui_users.json, and the wizard restarted: his session is over
    bob = httpx.Client(base_url=w.url, timeout=30)
    assert _login(bob, "bob", "bob long passphrase").status_code == 200
    users = json.loads((home / "ui_users.json").read_text())
    del users["bob"]
    (home / "ui_users.json").write_text(json.dumps(users))
    w.stop()
    w = launch("--password", home=home, port=w.port)
    assert bob.get("/project/settings").status_code == 401
    assert alice.get("/project/settings").status_code == 200  # alice's session survives the restart

    # guessing alice's password: five tries, then 429 with Retry-After — even for the right password
    guesser = httpx.Client(base_url=w.url, timeout=30)
    assert {_login(guesser, "alice", f"guess {n}").status_code for n in range(5)} == {401}
    locked = _login(guesser, "alice", "alice new passphrase")
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert "Too many wrong passwords" in locked.json()["detail"]
    assert _login(guesser, "carol", "carol long passphrase").status_code == 200  # another user still gets in
    # one address trying many names: 20 wrong tries, then nobody from there gets in for a while
    assert {_login(guesser, f"user{n}", "whatever1") .status_code for n in range(15)} == {401}
    assert _login(guesser, "carol", "carol long passphrase").status_code == 429
