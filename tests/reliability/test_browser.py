"""The sign-in flows in a real Chromium: the printed token link, and the password page off loopback."""

from __future__ import annotations

import pytest

from assistant.access import set_password

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]


def test_the_printed_link_signs_in_and_a_browser_without_it_gets_nothing(launch, browser, page):
    w = launch()
    page.goto(f"{w.url}/?token={w.token}")
    page.get_by_text("What should your model do?").first.wait_for()
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


def test_off_loopback_the_password_page_signs_in(launch, page, tmp_path):
    home = tmp_path / "home"
    set_password(home, "owner", "a long passphrase")
    w = launch("--host", "0.0.0.0", home=home)
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
