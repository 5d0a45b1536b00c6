"""`mtw ui` killed (SIGKILL) right after Keep, Looks right and mid-upload: restarted, the conversation goes on."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from tests.e2e.test_journey import assistant_model
from tests.e2e.test_wizard import FILLS
from tests.reliability.chat import Chat, plain_interview
from tests.reliability.conftest import signed_in_client
from tests.reliability.test_uploads import STORIES

pytestmark = pytest.mark.reliability


def kill(w) -> None:
    """SIGKILL the wizard and everything it started, as a power cut or the OOM killer would."""
    os.killpg(w.proc.pid, signal.SIGKILL)
    w.proc.wait(10)


async def reopen(w, thread_id: str | None) -> Chat:
    """The conversation opened again from the history list, on a restarted wizard."""
    assert thread_id
    chat = await Chat(w.url, dict(signed_in_client(w).cookies), thread_id=thread_id).open()
    await chat.wait_text("Welcome back! Here is where we were:")
    return chat


@pytest.mark.timeout(600)  # three starts of `mtw ui`
async def test_killed_after_looks_right_and_mid_upload_the_spec_stays_and_the_upload_can_be_made_again(launch):
    w = launch()
    chat = await Chat(w.url, dict(signed_in_client(w).cookies)).open()
    await plain_interview(chat)
    await chat.click("Looks right")  # answered once the wizard has taken it in
    thread = chat.thread_id
    kill(w)
    await chat.close()

    w = launch(home=w.home, port=w.port)
    chat = await reopen(w, thread)
    assert any("Here is your project" in t for t in chat.history)
    assert list((w.home / "projects").rglob("spec.json")), "the confirmed spec was lost"
    # the question that was open is asked again, and answers
    await chat.click("Upload a file of examples")
    await chat.wait_text("Attach your examples file")
    cookie = "; ".join(f"{k}={v}" for k, v in chat.cookies.items())
    with socket.create_connection(("127.0.0.1", w.port), timeout=10) as raw:
        head = (f"POST /project/file?session_id={chat.session_id} HTTP/1.1\r\nHost: 127.0.0.1:{w.port}\r\n"
                f"Cookie: {cookie}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {2 * len(STORIES) + 200}\r\n\r\n--b\r\nContent-Disposition: form-data; "
                'name="file"; filename="stories.jsonl"\r\nContent-Type: application/json\r\n\r\n')
        raw.sendall(head.encode() + STORIES)  # half the promised body: the upload is still arriving
        kill(w)
    await chat.close()

    w = launch(home=w.home, port=w.port)
    chat = await reopen(w, thread)
    try:
        await chat.wait_text("Attach your examples file")
        ref = await chat.upload("stories.jsonl", STORIES)
        await chat.say("", files=[ref])
        await chat.wait_text("**12 examples**")
    finally:
        await chat.close()
    # the killed wizard's half upload left nothing behind
    assert [p.name for p in (w.home / "ui").iterdir()] == [str(w.proc.pid)]


@pytest.mark.timeout(600)
async def test_killed_right_after_keep_the_kept_draft_stays_and_drafting_goes_on(launch, ollama):
    ollama.responder = assistant_model
    w = launch(ollama=ollama.url)
    chat = await Chat(w.url, dict(signed_in_client(w).cookies)).open()
    await chat.wait_text("What should your model do?")
    await chat.say("I want user stories written the way my team writes them")
    await chat.wait_text("Who reads what the model produces?")
    await chat.say(FILLS["audience"]["audience"])
    await chat.wait_text("How should it sound and look?")
    await chat.say("plain, with bullets")
    await chat.wait_text("Paste one or two real samples")
    await chat.click("Skip")
    await chat.wait_text("must never do")
    await chat.click("Skip")
    await chat.click("Looks right")
    await chat.click("Draft examples with me")
    await chat.wait_text("Write a user story about saved carts")
    await chat.click("Keep")
    thread = chat.thread_id
    kill(w)
    await chat.close()

    w = launch(home=w.home, port=w.port, ollama=ollama.url)
    chat = await reopen(w, thread)
    try:
        await chat.wait_text("Write a user story about gift cards")  # the next draft, asked again
        await chat.click("Keep")
        await chat.wait_text("Write a user story about order tracking")
        await chat.say("show my dataset")
        table = await chat.wait_text("Your dataset: 2 examples")
    finally:
        await chat.close()
    assert "saved carts" in table
    assert "gift cards" in table
