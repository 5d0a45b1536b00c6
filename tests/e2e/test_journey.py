"""The journey's chat features in a real browser: the settings panel, drafting, the quick path, documents, and a
trained model compared, tried, shipped and improved."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest

from tests.e2e.test_wizard import (
    attach,
    plain_interview,
    say,
    scripted_slot_filler,
    skip_optional_questions,
    train_tiny_on_the_sample,
    wait_text,
)

pytestmark = pytest.mark.e2e

TOPICS = ["saved carts", "gift cards", "order tracking", "address book", "wish lists"]
STYLED_ANSWER = "As a shopper, I want search to forgive typos, so that I find products fast."
GROUNDED = {"request": "What must the checkout redesign achieve?",
            "answer": "Cut abandoned carts by ten percent before the November holiday season."}
DOC = ("# Goals\n\nThe checkout redesign must cut abandoned carts by ten percent before the holiday season starts in "
       "November, without adding a new payment step.\n")


WHO = {"saved carts": ("shopper", "I can finish checkout later", "works offline on the phone app"),
       "gift cards": ("support agent", "refunds take minutes, not days", "is logged for the audit trail"),
       "order tracking": ("returning customer", "I know when the parcel arrives", "sends one confirmation email"),
       "address book": ("first-time visitor", "I never retype my address", "keeps working after a password reset"),
       "wish lists": ("gift buyer", "I remember what to buy next month", "appears in the weekly report")}


def story(topic: str) -> dict[str, str]:
    """A drafted user story; drafts differ in persona, benefit and criteria, as real ones do."""
    who, why, criterion = WHO[topic]
    return {"request": f"Write a user story about {topic}",
            "answer": f"As a {who}, I want {topic} so that {why}.\n\nAcceptance criteria:\n- {topic} {criterion}"}


def assistant_model(body: dict[str, Any]) -> str:
    """What a good assistant model answers (scripted in the Ollama test double): the interview's slots, a batch
    of drafts, drafts grounded in a passage, and a plain chat answer from a model made in the double."""
    prompt = body["messages"][-1]["content"]
    if "format" not in body:
        return STYLED_ANSWER
    if "--- passage ---" in prompt:
        return json.dumps({"examples": [GROUNDED]})
    asked = re.search(r"Write (\d+) new request / answer pair", prompt)
    if asked:
        # as many as asked for, none already in the dataset (the prompt lists those)
        fresh = [t for t in TOPICS if f"about {t}" not in prompt]
        return json.dumps({"examples": [story(t) for t in fresh[:int(asked.group(1))]]})
    return scripted_slot_filler(body)


def interview_with_the_model(page) -> None:
    """The interview answered in words the assistant model fills in; ends at where the examples come from."""
    wait_text(page, "What should your model do?")
    say(page, "I want user stories written the way my team writes them")
    wait_text(page, "Who reads what the model produces?")
    say(page, "our engineers and designers")
    wait_text(page, "How should it sound and look?")
    say(page, "plain, with bullets")
    skip_optional_questions(page)
    page.get_by_role("button", name="Looks right").click()
    wait_text(page, "Now your training examples")


def test_changing_epochs_in_the_settings_panel_plans_again(start_wizard, page, screenshot):
    wizard = start_wizard("http://127.0.0.1:9")
    page.goto(wizard.url)
    plain_interview(page)
    page.get_by_role("button", name="Looks right").click()
    page.get_by_role("button", name="Start from the sample PM dataset").click()
    page.get_by_role("button", name="Continue to training").last.click()
    page.get_by_role("button", name="Use tiny-random to try the steps").click()
    wait_text(page, "Plan:")
    page.locator("#chat-settings-open-modal").click()
    page.locator("#epochs").fill("1")
    page.locator("#confirm").click()
    wait_text(page, "Settings: epochs 1")  # what was changed, shown as the user's message
    wait_text(page, "Changed:")
    wait_text(page, "1 epochs")
    screenshot("settings.png")


def test_the_plan_trains_on_the_model_already_in_ollama_with_a_recipe_sized_to_it(ollama, start_wizard, page,
                                                                                 screenshot):
    from tests.fakes.real_model import SMOLLM2_TAG, require_smollm2
    from tools.export.templates import template_for

    ollama.pull_gguf(SMOLLM2_TAG, require_smollm2(), template=template_for("chatml", "smollm2"))
    ollama.responder = assistant_model
    wizard = start_wizard(ollama.url)
    page.goto(wizard.url)
    interview_with_the_model(page)
    page.get_by_role("button", name="Start from the sample PM dataset").click()
    page.get_by_role("button", name="Continue to training").last.click()
    # offered before any download: the very weights the user's Ollama runs
    page.get_by_role("button", name=f"Train on the {SMOLLM2_TAG} already in your Ollama — nothing to download").click()
    wait_text(page, f"Training on the **{SMOLLM2_TAG}** already in your Ollama".replace("**", ""))
    wait_text(page, "Sized to a 0.14B base: learning rate 0.001")
    wait_text(page, "72 steps")
    screenshot("plan-real-model.png")
    sized = page.get_by_text("at least 72 steps", exact=False).count()
    # the user's own length wins over the sized one
    say(page, "use 2 epochs")
    wait_text(page, "Changed:")
    wait_text(page, "2 epochs")
    assert page.get_by_text("at least 72 steps", exact=False).count() == sized  # the new plan has no such line
    assert page.get_by_text("Sized to a 0.14B base: learning rate 0.001", exact=False).count() == sized + 1


def test_a_draft_kept_and_one_edited_show_in_the_dataset_table(ollama, start_wizard, page, screenshot):
    ollama.responder = assistant_model
    wizard = start_wizard(ollama.url)
    page.goto(wizard.url)
    interview_with_the_model(page)
    page.get_by_role("button", name="Draft examples with me").click()
    wait_text(page, "Write a user story about saved carts")
    page.get_by_role("button", name="Keep").last.click()
    wait_text(page, "Write a user story about gift cards")
    page.get_by_role("button", name="Edit").last.click()
    wait_text(page, "send it back as your message")
    say(page, "User: Write a user story about gift card balances\n\n"
              "Assistant: As a shopper, I want to see my gift card balance so that I know what I can spend.")
    wait_text(page, "Kept your edited version.")
    wait_text(page, "Write a user story about order tracking")
    say(page, "show my dataset")
    wait_text(page, "Your dataset: 2 examples")
    table = page.locator("table").last
    table.get_by_role("cell", name="Write a user story about saved carts").wait_for()
    table.get_by_role("cell", name="Write a user story about gift card balances").wait_for()
    # the edit replaced the draft
    assert table.get_by_role("cell", name="Write a user story about gift cards").count() == 0
    screenshot("drafts.png")


def test_the_quick_path_makes_a_styled_model_in_ollama_and_answers(ollama, start_wizard, page, screenshot):
    ollama.responder = assistant_model
    wizard = start_wizard(ollama.url)
    page.goto(wizard.url)
    interview_with_the_model(page)
    page.get_by_role("button", name="Make a styled model without training").click()
    wait_text(page, "is in your Ollama")
    assert "PM-UserStoriesWritten-Styled-v1" in ollama.created
    wait_text(page, "ollama run PM-UserStoriesWritten-Styled-v1")
    page.get_by_role("button", name="Try it").last.click()
    wait_text(page, "Type a prompt for")
    say(page, "Write a user story for search")
    wait_text(page, STYLED_ANSWER)
    screenshot("quick-path.png")


def test_a_markdown_document_gives_a_grounded_draft_shown_with_its_passage(ollama, tmp_path, start_wizard, page,
                                                                           screenshot):
    doc = tmp_path / "checkout notes.md"
    doc.write_text(DOC)
    ollama.responder = assistant_model
    wizard = start_wizard(ollama.url)
    page.goto(wizard.url)
    interview_with_the_model(page)
    page.get_by_role("button", name="Draft from my documents").click()
    wait_text(page, "Attach a document")
    attach(page, doc)
    wait_text(page, "written from passage 1")
    wait_text(page, "The checkout redesign must cut abandoned carts")  # the passage, quoted with the draft
    wait_text(page, GROUNDED["answer"])
    screenshot("documents.png")
    page.get_by_role("button", name="Keep").last.click()
    wait_text(page, "You have 1 example so far")
    page.get_by_role("button", name="Show my dataset").last.click()
    page.locator("table").last.get_by_role("cell", name=GROUNDED["request"]).wait_for()


class Judge:
    """The assistant model as above, and as the judge (a double). Until `score` is set, the score of an answer is
    1–5 from a hash of it: the same answer always gets the same score, and two different answers seldom tie."""

    score: int | None = None

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        if "format" in body and messages[0]["role"] == "system" and messages[0]["content"].startswith("You review"):
            answer = messages[-1]["content"].rsplit("Answer to score:", 1)[-1]
            score = self.score or 1 + int(hashlib.sha256(answer.encode()).hexdigest(), 16) % 5
            return json.dumps({c: {"score": score, "justification": "Scored by the test double."}
                               for c in ("accuracy", "format", "relevance", "completeness", "tone")})
        return assistant_model(body)


def keep_every_draft(page) -> int:
    """Keep each draft of a batch as it is shown; returns how many were kept."""
    done = page.get_by_role("button", name="Check my examples")
    kept = 0
    for topic in TOPICS:
        page.get_by_text(f"Write a user story about {topic}").last.or_(done.last).first.wait_for()
        if done.count():
            break
        page.get_by_role("button", name="Keep").last.click()
        kept += 1
    done.last.wait_for()
    return kept


@pytest.mark.slow  # two real trainings in a browser: `make test-all`; the graph tests take these steps in `make test`
@pytest.mark.timeout(1500)
def test_a_trained_model_is_compared_tried_shipped_improved_and_retrained_in_the_chat(ollama, start_wizard, page,
                                                                                      screenshot):
    judge = Judge()
    ollama.responder = judge
    wizard = start_wizard(ollama.url)
    page.goto(wizard.url)
    interview_with_the_model(page)
    train_tiny_on_the_sample(page)
    wait_text(page, "Training started")
    page.get_by_text("Training: step").last.wait_for(timeout=120_000)
    page.get_by_text("Training finished.").last.wait_for(timeout=600_000)
    wait_text(page, "Loss (training and validation)")
    runs = list((wizard.home / "projects").glob("*/runs/*/adapter/adapter_model.safetensors"))
    assert len(runs) == 1

    # compare: per test category, both answers side by side with the judge's scores and a winner mark
    page.get_by_role("button", name="Compare it with the base model").click()
    page.get_by_text("Verdict.").last.wait_for(timeout=400_000)
    wait_text(page, "What next?")
    page.wait_for_timeout(2000)
    compared = page.locator("table").filter(has=page.get_by_role("columnheader", name="Judge (base→tuned)"))
    assert compared.count() >= 1
    first = compared.first
    for column in ("Prompt", "Base model", "Tuned model", "Winner"):
        first.get_by_role("columnheader", name=column).wait_for()
    marks = [row.locator("td").last.inner_text() for t in compared.all() for row in t.locator("tbody tr").all()]
    assert marks
    assert set(marks) <= {"🏆 tuned", "🏆 base", "tie"}
    assert any(m.startswith("🏆") for m in marks)
    # every column in view without scrolling sideways: long runs without spaces (tiny-random's garbled answers)
    # wrap inside their cells
    overflow = first.evaluate("""t => { for (let p = t.parentElement; p; p = p.parentElement) {
            const o = getComputedStyle(p).overflowX;
            if (o === 'auto' || o === 'scroll') return p.scrollWidth - p.clientWidth; }
        return t.getBoundingClientRect().right - window.innerWidth; }""")
    assert overflow <= 1
    first.evaluate("t => t.scrollIntoView({block: 'start'})")
    screenshot("compare.png")

    # try it: a typed prompt answered by the run's adapter, here, before any export
    page.get_by_role("button", name="Try it").last.click()
    wait_text(page, "on this machine, before export")
    say(page, "Write a user story for exporting reports")
    wait_text(page, "Rate it")
    page.get_by_text("Tuned model:").last.wait_for()
    page.get_by_role("button", name="Also show the base").last.wait_for()
    say(page, "done trying")

    # ship it: the name asked (the next version suggested), the size chosen; Ollama stops answering just then, so
    # the chat writes the Modelfile and the commands, waits, and finishes the export once Ollama is back
    page.get_by_role("button", name="Put it into Ollama").last.click()
    wait_text(page, "What should the model be called in Ollama?")
    wait_text(page, "PM-UserStoriesWritten-v1")
    say(page, "PM-Stories")
    wait_text(page, "How compact should PM-Stories-v1 be?")
    port = int(ollama.url.rsplit(":", 1)[1])
    ollama.stop()
    page.get_by_role("button", name="None — exact").last.click()
    page.get_by_text("ollama create").last.wait_for(timeout=300_000)
    assert (runs[0].parent.parent / "export" / "Modelfile").is_file()
    page.get_by_role("button", name="Try again now").last.click()
    wait_text(page, "still not answering")
    ollama.start(port)
    page.get_by_role("button", name="Try again now").last.click()
    page.get_by_text("ollama run PM-Stories-v1").last.wait_for(timeout=300_000)
    assert "PM-Stories-v1" in ollama.created
    wait_text(page, "PM-Stories-v1 is in your Ollama")

    # improve it: round 2's plan, the weakest areas with why, and drafting for the first one offered
    page.get_by_role("button", name="Improve it (next round)").last.click()
    page.get_by_text("Next round:").last.wait_for()
    plan = page.locator("table").filter(has=page.get_by_role("columnheader", name="Why")).last
    assert plan.locator("tbody tr").count() >= 1
    wait_text(page, "Start the round?")
    draft = page.get_by_role("button", name=re.compile(r"^Draft \d+ ")).last
    draft.wait_for()
    screenshot("round-two.png")

    # round 2: the drafts kept, the grown dataset checked, v2 trained on it, compared and shipped as v2
    draft.click()
    kept = keep_every_draft(page)
    assert kept >= 1
    wait_text(page, f"You have {45 + kept} examples")
    page.get_by_role("button", name="Check my examples").last.click()
    plans, finished, verdicts = (page.get_by_text(t).count() for t in ("Plan:", "Training finished.", "Verdict."))
    page.get_by_role("button", name="Continue to training").last.click()
    page.get_by_text("Plan:").nth(plans).wait_for(timeout=180_000)
    page.get_by_role("button", name="Start training").last.click()
    page.get_by_text("Training finished.").nth(finished).wait_for(timeout=600_000)
    assert len(list((wizard.home / "projects").glob("*/runs/*/adapter/adapter_model.safetensors"))) == 2
    judge.score = 5  # the retrained model answers better
    page.get_by_role("button", name="Compare it with the base model").last.click()
    page.get_by_text("Verdict.").nth(verdicts).wait_for(timeout=400_000)
    page.get_by_role("button", name="Put it into Ollama").last.click()
    page.get_by_role("button", name="Use PM-Stories-v2").last.click()  # the name given to v1, one version on
    wait_text(page, "How compact should PM-Stories-v2 be?")
    page.get_by_role("button", name="None — exact").last.click()
    page.get_by_text("ollama run PM-Stories-v2").last.wait_for(timeout=300_000)
    assert "PM-Stories-v2" in ollama.created

    # v1 and v2 side by side, the better one named, and promoted when the user says so
    both = page.locator("table").filter(has=page.get_by_role("columnheader", name="PM-Stories-v2")).last
    both.get_by_role("columnheader", name="PM-Stories-v1").wait_for()
    assert both.locator("tbody tr").first.locator("td").first.inner_text() == "summary.judge_mean"
    wait_text(page, "PM-Stories-v2 scores higher on summary.judge_mean")
    promote = page.get_by_role("button", name="Promote PM-Stories-v2").last
    promote.wait_for()
    both.evaluate("t => t.scrollIntoView({block: 'start'})")
    screenshot("round-two-compare.png")
    promote.click()
    wait_text(page, "is now the promoted version")
    say(page, "show my models")
    models = page.locator("table").filter(has=page.get_by_role("cell", name="⭐ PM-Stories-v2")).last
    models.get_by_role("cell", name="PM-Stories-v1", exact=True).wait_for()
    charts = page.locator(".js-plotly-plot").count()
    assert charts >= 4  # two trainings, two evaluations

    # reopened later, the conversation comes back with its charts (stored in MTW_HOME/chat-files)
    import sqlite3

    with sqlite3.connect(wizard.home / "chat.db") as db:
        (thread_id,) = db.execute('SELECT "id" FROM threads').fetchone()
    page.goto(f"{wizard.url}/thread/{thread_id}")
    wait_text(page, "Loss (training and validation)")
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    assert page.locator(".js-plotly-plot").count() == charts
    # with their data, not empty axes
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')].every(p => (p.data || []).length)")
    points = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')]"
                           ".map(p => (p.data || []).reduce((n, t) => n + ((t.x || t.y || []).length || 0), 0))")
    assert all(n > 0 for n in points), points
    wait_text(page, "Welcome back")
    assert page.get_by_text("Welcome back").count() == 1
