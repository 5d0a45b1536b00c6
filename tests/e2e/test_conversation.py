"""Steering the wizard by talking, in a real browser: questions, settings, stop and resume, old buttons."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_wizard import attach, click_for, plain_interview, say, wait_text

pytestmark = pytest.mark.e2e


def test_a_question_at_a_free_text_question_is_answered_not_stored(start_wizard, page):
    wizard = start_wizard("http://127.0.0.1:9")
    page.goto(wizard.url)
    wait_text(page, "What should your model do?")
    say(page, "User stories for our team")  # the kind is not in these words: it is asked
    page.get_by_role("button", name="Writes text (generation)").click()
    say(page, "engineers")
    wait_text(page, "How should it sound and look?")
    say(page, "plain")
    wait_text(page, "Paste one or two real samples")
    say(page, "what is an epoch?")
    wait_text(page, "Now, back to where we were")
    click_for(page, "Skip", "must never do")
    click_for(page, "Skip", "Here is your project")
    # a burst of clicks on one button answers one question
    page.get_by_role("button", name="Looks right").click(click_count=3)
    wait_text(page, "Now your training examples")
    page.wait_for_timeout(3000)
    assert page.get_by_text("Saved your project").count() == 1
    spec = json.loads(next((wizard.home / "projects").glob("*/spec.json")).read_text())
    assert spec["samples"] == []
    assert spec["never_do"] == []
    # after a question is asked again, only its newest copy has buttons
    say(page, "where are we?")
    wait_text(page, "We are at")
    page.wait_for_timeout(1500)
    assert page.get_by_role("button", name="Upload a file of examples").count() == 1


@pytest.mark.slow  # two training processes in a browser: `make test-all`; tests/unit/assistant/test_conversation.py
# stops, resumes and changes settings by talking in `make test`
@pytest.mark.timeout(900)
def test_stop_then_resume_from_the_chat_and_change_a_setting_by_talking(tmp_path, start_wizard, page, screenshot):
    wizard = start_wizard("http://127.0.0.1:9")
    page.goto(wizard.url)
    plain_interview(page)
    page.get_by_role("button", name="Looks right").click()
    page.get_by_role("button", name="Upload a file of examples").click()
    wait_text(page, "Attach your examples file")
    attach(page, "examples/pm_dataset.jsonl")
    wait_text(page, "45 examples")
    page.get_by_role("button", name="Continue to training").last.click()
    page.get_by_text("are not on this machine yet").last.wait_for(timeout=180_000)
    say(page, "tiny-random please")  # said, not clicked
    wait_text(page, "Plan:")
    say(page, "max steps 8")
    wait_text(page, "Changed:")
    wait_text(page, "at most 8 steps")
    screenshot("plan-changed.png")
    page.get_by_role("button", name="Start training").last.click()
    page.get_by_text("Training: step").last.wait_for(timeout=240_000)
    say(page, "stop")
    page.get_by_text("Training was stopped").last.wait_for(timeout=240_000)
    page.get_by_role("button", name="Resume training").last.click()
    wait_text(page, "Resuming")
    page.get_by_text("Training finished.").last.wait_for(timeout=400_000)
    wait_text(page, "What next?")
    runs = list((wizard.home / "projects").glob("*/runs/*/events.jsonl"))
    events = runs[0].read_text()
    assert '"stopped"' in events
    assert '"done"' in events
    assert '"max_steps": 8' in events


def test_stopping_a_slow_assistant_model_takes_the_next_message_instead(ollama, start_wizard, page, screenshot):
    import threading
    import time

    from tests.e2e.test_wizard import scripted_slot_filler

    first = threading.Event()

    def slow_first_reading(body):
        # the first reading of the purpose takes a minute: a busy machine's small model
        if not first.is_set() and "format" in body:
            first.set()
            time.sleep(60)
        return scripted_slot_filler(body)

    ollama.responder = slow_first_reading
    wizard = start_wizard(ollama.url)
    page.goto(wizard.url)
    wait_text(page, "What should your model do?")
    say(page, "I want user stories written the way my team writes them")
    wait_text(page, "Thinking about your message")
    screenshot("thinking.png")
    page.locator("#stop-button").click()
    say(page, "Write PRD drafts for the platform team")
    wait_text(page, "took your new message instead")
    wait_text(page, "Who reads what the model produces?")
    screenshot("thinking-stopped.png")
    say(page, "engineers")
    wait_text(page, "How should it sound and look?")
    say(page, "plain")
    wait_text(page, "Paste one or two real samples")
    click_for(page, "Skip", "must never do")
    click_for(page, "Skip", "Here is your project")
    page.get_by_role("button", name="Looks right").last.click()
    wait_text(page, "Saved your project")
    spec = json.loads(next((wizard.home / "projects").glob("*/spec.json")).read_text())
    assert spec["purpose"] == "Write PRD drafts for the platform team"  # the message that replaced the stopped one
