"""Uploads: hostile names are reduced to safe base names, and only readable files of a sane size are kept."""

from __future__ import annotations

import asyncio
import io
import socket
import sqlite3
import zipfile
from pathlib import Path

import httpx
import pytest

from assistant.uploads import MAX_NAME, safe_name, share_file
from tests.reliability.chat import Chat, plain_interview
from tests.reliability.conftest import cookie_header, signed_in_client, socket_session
from tools.dataset.intake import kept_copy
from tools.dataset.sniff import upload_refusal as refusal
from tools.dataset.store import DatasetStore

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.mark.parametrize(("name", "safe"), [
    ("..", "upload"), ("../../x.jsonl", "x.jsonl"), ("/etc/passwd", "passwd"), ("a\x00b.jsonl", "ab.jsonl"),
    ("C:\\Users\\me\\data.csv", "data.csv"), (".hidden", "hidden"), ("", "upload"), ("my examples.csv",
                                                                                    "my examples.csv"),
    ("line\nbreak.txt", "linebreak.txt"), ("<script>.html", "_script_.html"),
])
def test_names_become_safe_base_names(name: str, safe: str):
    assert safe_name(name) == safe


def test_long_names_are_capped_and_keep_their_extension():
    cut = safe_name("x" * 500 + ".jsonl")
    assert len(cut) <= MAX_NAME
    assert cut.endswith(".jsonl")


def _docx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


@pytest.mark.parametrize(("data", "words"), [
    (b"", "empty (0 bytes)"), (PNG, "PNG image"), (b"\xff\xd8\xff\xe0" + b"\0" * 32, "JPEG image"),
    (b"\x1f\x8b\x08" + b"\0" * 32, "gzip-compressed"), (b"\x7fELF\x02\x01\x01" + b"\0" * 60, "does not look like"),
    (b"PK\x03\x04" + b"\0" * 40, "zip archive"),
])
def test_files_the_wizard_cannot_read_are_refused_in_words(data: bytes, words: str):
    why = refusal("data.jsonl", data)
    assert why is not None
    assert words in why
    assert "data.jsonl" in why


@pytest.mark.parametrize("data", [
    b'{"messages": []}\n', b"prompt,response\na,b\n", "caf\u00e9;cr\u00e8me\n".encode("latin-1"),
    "\ufeffhello".encode("utf-16"), b"%PDF-1.7\n...", b"# Notes\n\n- one\n", b"<html><body>x</body></html>",
])
def test_text_and_documents_are_accepted(data: bytes):
    assert refusal("data", data) is None
    assert refusal("report.docx", _docx()) is None


def _upload(client: httpx.Client, session_id: str, name: str, data: bytes, mime: str = "text/plain") -> httpx.Response:
    return client.post("/project/file", params={"session_id": session_id}, files={"file": (name, data, mime)})


@pytest.mark.reliability
def test_uploads_through_the_server(launch):
    package_ui = Path(__file__).resolve().parents[2] / "assistant" / "ui"
    before = sorted(package_ui.rglob("*"))
    w = launch("--max-upload-mb", "1")
    client = signed_in_client(w)
    ws, session = socket_session(w, cookie_header(client))
    scratch = next((w.home / "ui").iterdir()) / ".files" / session
    try:
        for hostile in ["..", "../../x.jsonl", "/etc/passwd", "a\x00b.jsonl"]:
            reply = _upload(client, session, hostile, b'{"text": "hi"}\n')
            assert reply.status_code == 200, (hostile, reply.text)
        kept = list(scratch.iterdir())
        # one copy per upload, inside this server's own folder, named by chainlit's id (never by the user's name)
        assert len(kept) == 4
        assert all(p.is_file() and p.parent == scratch for p in kept)
        assert not (w.home / "x.jsonl").exists()
        assert not (w.home.parent / "x.jsonl").exists()

        empty = _upload(client, session, "empty.jsonl", b"")
        assert empty.status_code == 400
        assert "empty (0 bytes)" in empty.json()["detail"]
        image = _upload(client, session, "photo.jsonl", PNG, "application/json")
        assert image.status_code == 400
        assert "PNG image" in image.json()["detail"]

        big = b"a,b\n" * (300 * 1024)  # 1.2 MB of CSV over a 1 MB limit
        too_big = _upload(client, session, "big.csv", big)
        assert too_big.status_code == 413
        assert "larger than 1 MB" in too_big.json()["detail"]
        # a body that claims 600 MB is refused from its header, before a byte of it is read
        with socket.create_connection(("127.0.0.1", w.port), timeout=10) as raw:
            raw.sendall(f"POST /project/file?session_id={session} HTTP/1.1\r\nHost: 127.0.0.1:{w.port}\r\n"
                        f"Cookie: {cookie_header(client)}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                        f"Content-Length: {600 * 2**20}\r\n\r\n--b\r\n".encode())
            assert raw.recv(4096).startswith(b"HTTP/1.1 413")

        def stream() -> object:  # no Content-Length at all: counted as it arrives
            boundary = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.csv\"\r\n\r\n"
            yield boundary
            for _ in range(40):
                yield b"a,b\n" * 16384
            yield b"\r\n--b--\r\n"

        streamed = client.post("/project/file", params={"session_id": session}, content=stream(),
                               headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert streamed.status_code == 413
        assert len(list(scratch.iterdir())) == 4
        assert sorted(package_ui.rglob("*")) == before  # nothing written inside the installed package
    finally:
        ws.close()  # type: ignore[attr-defined]


HOSTILE_PAGE = (b"<html><body><script>fetch('/project/threads', {method: 'POST'}).then(r => r.text())</script>"
                b"x</body></html>")


@pytest.mark.reliability
def test_an_uploaded_html_page_comes_back_as_an_inert_download_never_a_page_on_the_wizards_origin(launch):
    w = launch()
    client = signed_in_client(w)
    ws, session = socket_session(w, cookie_header(client))
    try:
        ref = _upload(client, session, "notes.html", HOSTILE_PAGE, "text/html").json()
        served = client.get(f"/project/file/{ref['id']}", params={"session_id": session})
        assert served.status_code == 200
        assert served.content == HOSTILE_PAGE  # the user still gets their file back, byte for byte
        assert served.headers["content-disposition"].startswith("attachment")
        assert served.headers["x-content-type-options"] == "nosniff"
        assert "text/html" not in served.headers["content-type"]
        assert "sandbox" in served.headers["content-security-policy"]
    finally:
        ws.close()  # type: ignore[attr-defined]
    # a conversation's stored files: a page is inert, a chart still reaches the page as JSON it can parse
    user_id = sqlite3.connect(w.home / "chat.db").execute("SELECT id FROM users WHERE identifier='local'").fetchone()[0]
    stored = w.home / "chat-files" / user_id / "el-1"
    stored.mkdir(parents=True)
    (stored / "page.html").write_bytes(HOSTILE_PAGE)
    (stored / "chart").write_text('{"data": []}')
    page = client.get(f"/mtw-files/{user_id}/el-1/page.html")
    assert page.content == HOSTILE_PAGE
    assert page.headers["content-disposition"].startswith("attachment")
    assert page.headers["content-type"] == "application/octet-stream"
    assert "sandbox" in page.headers["content-security-policy"]
    chart = client.get(f"/mtw-files/{user_id}/el-1/chart")
    assert chart.headers["content-type"] == "application/json"
    assert chart.json() == {"data": []}


STORIES = b"".join(
    b'{"messages": [{"role": "user", "content": "Write a user story about %d"}, '
    b'{"role": "assistant", "content": "As a shopper I want item %d so that I can finish."}]}\n' % (i, i)
    for i in range(12))


@pytest.mark.reliability
async def test_an_upload_the_project_keeps_is_stored_once_and_still_shown_when_reopened(launch):
    w = launch()
    chat = await Chat(w.url, dict(signed_in_client(w).cookies)).open()
    try:
        await plain_interview(chat)
        await chat.click("Looks right")
        await chat.click("Upload a file of examples")
        await chat.wait_text("Attach your examples file")
        ref = await chat.upload("stories.jsonl", STORIES)
        before = chat.turns_ended
        await chat.say("", files=[ref])
        await chat.wait_text("**12 examples**")
        await chat.wait_turn_end(before)
        thread = (await chat.http.get(f"/project/thread/{chat.thread_id}")).json()
        # the open page still downloads the attachment
        live = await chat.http.get(f"/project/file/{ref['id']}", params={"session_id": chat.session_id})
        assert live.content == STORIES
    finally:
        await chat.close()
    copies = [p for p in w.home.rglob("*") if p.is_file() and p.read_bytes() == STORIES]
    # hard links are one file: the chat shows the project's copy itself, in the open page and once reopened
    assert len({(p.stat().st_dev, p.stat().st_ino) for p in copies}) == 1, copies
    assert any("projects" in p.parts for p in copies)
    [element] = [e for e in thread["elements"] if e["name"] == "stories.jsonl"]
    with httpx.Client(base_url=w.url, cookies=signed_in_client(w).cookies, timeout=30) as client:
        assert client.get(element["url"]).content == STORIES


def test_the_projects_copy_is_found_by_its_bytes_and_the_chats_copy_becomes_that_file(tmp_path: Path):
    sent = tmp_path / "sent"
    sent.mkdir()
    (sent / "stories.jsonl").write_bytes(STORIES)
    (sent / "same-size.jsonl").write_bytes(STORIES.replace(b"shopper", b"Shopper"))
    kept = DatasetStore("project").import_file(sent / "stories.jsonl", name="stories.jsonl").path
    DatasetStore("project").import_file(sent / "same-size.jsonl", name="same-size.jsonl")
    upload = tmp_path / "chat" / "stories.jsonl"
    upload.parent.mkdir()
    upload.write_bytes(STORIES)
    assert kept_copy("project", upload) == kept
    share_file(kept, upload)
    assert upload.samefile(kept)
    assert upload.read_bytes() == STORIES
    assert [p.name for p in upload.parent.iterdir()] == ["stories.jsonl"]  # no link left half made
    assert kept_copy("project", tmp_path / "gone.jsonl") is None
    assert kept_copy("no-project", upload) is None


@pytest.mark.reliability
async def test_a_file_sent_as_the_very_first_message_is_still_shown_when_the_conversation_is_reopened(launch):
    w = launch()
    chat = await Chat(w.url, dict(signed_in_client(w).cookies)).open()
    try:
        await chat.wait_text("What should your model do?")
        ref = await chat.upload("notes.txt", b"first words\n", "text/plain")
        before = chat.turns_ended
        await chat.say("", files=[ref])  # before any thread exists in the chat history
        await chat.wait_text("I'll look at files when I ask for your examples")
        await chat.wait_turn_end(before)
        await chat.say("Write user stories")  # the conversation goes on, as it would
        await chat.wait_text("Who reads what the model produces?")
        stored: list[dict] = []
        for _ in range(120):  # chainlit stores a message's files from a task of its own: until it has
            thread = (await chat.http.get(f"/project/thread/{chat.thread_id}")).json()
            if stored := [e for e in thread.get("elements") or [] if e["name"] == "notes.txt"]:
                break
            await asyncio.sleep(0.5)
    finally:
        await chat.close()
    [element] = stored
    assert not (w.home / "chat-files" / "unknown").exists()  # filed under its user, not under "unknown"
    with httpx.Client(base_url=w.url, cookies=signed_in_client(w).cookies, timeout=30) as client:
        assert client.get(element["url"]).content == b"first words\n"


def test_the_size_limit_is_said_in_the_unit_it_was_given_in():
    from assistant.access import UploadTooLarge

    assert "larger than 200 MB," in UploadTooLarge(200 * 2**20).detail
    assert "larger than 1 MB," in UploadTooLarge(2**20).detail
