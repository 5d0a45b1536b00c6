"""The whole journey in the chat, each action by a click and by saying it: authoring, documents, comparing, trying,
shipping, the quick path and round 2."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from tests.unit.assistant.helpers import ScriptedLLM, Session
from tools.dataset.store import DatasetStore

PERSONAS = ["shopper", "returning customer", "store manager", "support agent", "first-time visitor",
            "warehouse picker", "marketing lead", "finance clerk", "mobile user", "gift buyer", "guest", "admin"]
BENEFITS = ["I can finish checkout later", "refunds take minutes, not days", "I know when the parcel arrives",
            "I never retype my address", "I remember what to buy next month", "discounts apply without a code",
            "sending items back feels safe", "I trust what other buyers say", "collecting in store is quick",
            "presents arrive wrapped", "audits reconcile every Friday", "campaigns reach the right people"]
CRITERIA = ["works offline on the phone app", "shows a clear error naming the field", "is logged for the audit trail",
            "respects the customer's language setting", "loads in under two seconds", "can be undone within a day",
            "sends one confirmation email", "is hidden from guests", "keeps working after a password reset",
            "is translated into German and French", "appears in the weekly report", "has an admin override"]


def story(i: int, topic: str) -> dict[str, str]:
    """A drafted user story; stories differ in persona, benefit and criteria, as real drafts do."""
    k = i % len(PERSONAS)
    return {"request": f"Write a user story about {topic}",
            "answer": f"As a {PERSONAS[k]}, I want {topic} so that {BENEFITS[k]}.\n\nAcceptance criteria:\n"
                      f"- {topic} {CRITERIA[k]}\n- {CRITERIA[(k + 5) % len(CRITERIA)]}"}


TOPICS = ["saved carts", "gift cards", "order tracking", "address book", "wish lists", "coupon codes",
          "returns", "reviews"]


class DraftingLLM(ScriptedLLM):
    """A scripted assistant model that also drafts: each blocking structured call takes the next queued reply
    (a dict, or a function of the prompt). A test double, never shipped."""

    def __init__(self, *drafts: Any) -> None:
        super().__init__({"purpose": "User stories from ideas", "task_type": "generation"}, {"audience": "eng"},
                         {"house_style": "plain"}, {}, ok=True)
        self.drafts = deque(drafts)
        self.draft_prompts: list[str] = []

    def structured(self, prompt, schema, *, system=None):
        self.draft_prompts.append(prompt)
        nxt = self.drafts.popleft()
        return schema.model_validate(nxt(prompt) if callable(nxt) else nxt)


async def to_data_choice(s: Session) -> dict:
    await s.send()
    for answer in ["User stories from ideas", "generation", "eng", "plain", "skip", "skip"]:
        await s.send(answer)
    q = await s.send("confirm")
    assert q["then"] == "on_data_choice"
    return q


def batch(*topics: str, start: int = 0) -> dict:
    return {"examples": [story(start + i, t) for i, t in enumerate(topics)]}


async def test_a_draft_is_kept_edited_rewritten_dropped_or_varied_by_click_and_by_typing():
    llm = DraftingLLM(batch(*TOPICS[:5]),
                      {"request": "Write a user story about gift cards for an admin",
                       "answer": "As an admin, I want to issue gift cards so that support can refund quickly."},
                      batch("store pickup", "gift wrapping", start=10))
    s = Session(llm)
    q = await to_data_choice(s)
    q = await s.click("draft")
    assert q["then"] == "on_review"
    assert "saved carts" in q["text"]
    assert set(q["choices"]) == {
        "keep", "edit", "drop", "more"}
    # Edit: the draft as "User: … / Assistant: …" text; the edited text is checked before it is kept
    q = await s.click("edit")
    assert "User: Write a user story about saved carts" in q["text"]  # shown to copy and change
    assert "Assistant: As a shopper" in q["text"]
    q = await s.send("Assistant: As a shopper I want it.")
    assert "no user" in s.said[-1].lower() or "user" in s.said[-1].lower()
    assert q["then"] == "on_edit_example"  # asked again, nothing kept
    q = await s.send("User: Write a user story about saved carts for guests\n\n"
                     "Assistant: As a guest, I want my cart saved so that I can finish later.")
    assert s.said[-1] == "Kept your edited version."
    assert "gift cards" in q["text"]
    # any other words at the review are a rewrite instruction: the result is shown, then kept or dropped
    q = await s.send("keep it but make the persona an admin")
    assert "make the persona an admin" in llm.draft_prompts[-1]
    assert "Rewritten as you asked" in s.said[-1]
    assert "As an admin, I want to issue gift cards" in q["text"]
    q = await s.send("keep")
    # drop by typing, more like this by click (it keeps this one and queues the variations next)
    assert "order tracking" in q["text"]
    q = await s.send("drop")
    q = await s.click("more")
    assert "drafted 2 more like it" in s.said[-1]
    assert "store pickup" in q["text"]
    q = await s.send("yes")
    q = await s.click("drop")
    assert "wish lists" in q["text"]
    q = await s.send("Drop")
    assert q["then"] == "on_after_drafts"
    assert "**4 examples**" in q["text"]
    kept = [ex.prompt() for ex in DatasetStore("User stories from ideas").examples()]
    assert kept == ["Write a user story about saved carts for guests",
                    "Write a user story about gift cards for an admin", "Write a user story about address book",
                    "Write a user story about store pickup"]


async def test_coverage_after_each_batch_nudges_the_thin_category_and_the_dataset_table_edits_and_removes():
    llm = DraftingLLM(batch(*TOPICS[:5]), batch("status of the checkout project", "weekly search relevance numbers",
                                                 "the mobile app release", "billing migration risks",
                                                 "an API deprecation timeline", start=5))
    s = Session(llm)
    await to_data_choice(s)
    q = await s.send("draft examples with me")
    for answer in ["keep", "keep", "drop", "drop", "drop"]:
        q = await s.click(answer)
    cover = s.tables("Coverage per category")[-1]
    assert cover["columns"] == ["Category", "Examples", "Target", "Status"]
    assert ["User stories", "2", "20–30", "below target"] in cover["rows"]
    assert q["choices"]["nudge"] == "Draft 5 user stories"
    assert "2 user stories" in q["text"]
    q = await s.click("nudge")
    assert "Every one of them is of this kind" in llm.draft_prompts[-1]
    for answer in ["keep", "drop", "drop", "drop", "drop"]:
        q = await s.click(answer)
    # "show my dataset": the table with the category and the first words of each side; open one to edit it
    q = await s.send("show my dataset")
    shown = s.tables("Your dataset")[-1]
    assert shown["title"] == "Your dataset: 3 examples"
    assert shown["columns"] == ["#", "Category", "Request", "Answer"]
    assert shown["rows"][0][:3] == ["1", "User stories", "Write a user story about saved carts"]
    q = await s.send("2")
    assert q["then"] == "on_open"
    assert "gift cards" in q["text"]
    q = await s.send("edit")
    q = await s.send("User: Write a user story about gift card balances\n\nAssistant: As a shopper, I want to see "
                     "my gift card balance so that I know what I can spend.")
    assert "new version" in s.said[-1]
    assert s.tables("Your dataset")[-1]["rows"][1][2] == "Write a user story about gift card balances"
    q = await s.send("1")
    q = await s.click("remove")
    assert "2 examples now" in s.said[-1]
    assert [r[2] for r in s.tables("Your dataset")[-1]["rows"]] == [
        "Write a user story about gift card balances", "Write a user story about status of the …"]
    q = await s.click("back")
    assert q["then"] == "on_after_drafts"


async def test_an_upload_after_drafting_adds_to_the_drafts(tmp_path):
    llm = DraftingLLM(batch(*TOPICS[:5]))
    s = Session(llm)
    await to_data_choice(s)
    await s.click("draft")
    for answer in ["keep", "keep", "drop", "drop", "drop"]:
        await s.click(answer)
    await s.click("upload")
    upload = tmp_path / "mine.jsonl"
    upload.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Write a user story about {t}"},
                                                       {"role": "assistant", "content": f"As a user, I want {t}."}]})
                              + "\n" for t in TOPICS[5:] + ["returns policy"]))
    await s.send({"path": str(upload), "name": "mine.jsonl"})
    assert any("Added 4 new examples from **mine.jsonl**" in t for t in s.said)
    assert any(t.startswith("**6 examples**") for t in s.said)  # 2 drafts + 4 uploaded, nothing discarded


DOC = ("# Goals\n\nThe checkout redesign must cut abandoned carts by ten percent before the holiday season starts in "
       "November, without adding a new payment step.\n\n# Contacts\n\nQuestions about the rollout go to "
       "jane.doe@acme-retail.com, who owns the launch checklist and the support rota for the first week.\n")


async def test_drafts_from_a_document_flag_private_data_first_and_show_their_passage(tmp_path):
    grounded = {"examples": [{"request": "What must the checkout redesign achieve?",
                              "answer": "Cut abandoned carts by ten percent before the November holiday season."}]}
    llm = DraftingLLM(grounded)
    s = Session(llm)
    q = await to_data_choice(s)
    q = await s.send("draft from my documents")
    assert q["kind"] == "file"
    assert ".md" in q["accept"]
    assert ".pdf" in q["accept"]
    doc = tmp_path / "notes.md"
    doc.write_text(DOC)
    q = await s.send({"path": str(doc), "name": "notes.md"})
    assert "2 passages" in s.said[-1]
    assert q["then"] == "on_privacy"
    assert "email" in q["text"].lower()
    assert "Contacts" in q["text"]
    assert llm.draft_prompts == []  # nothing drafted before the user decides
    q = await s.send("continue without those passages")
    assert len(llm.draft_prompts) == 1
    assert "jane.doe" not in llm.draft_prompts[0]
    assert any("holds private data" in t for t in s.said)
    assert "written from passage 1 (section 'Goals') of notes.md" in q["text"]
    assert "> The checkout redesign" in q[
        "text"]
    assert "Cut abandoned carts" in q["text"]
    q = await s.click("keep")
    assert q["then"] == "on_after_drafts"
    assert [ex.prompt() for ex in DatasetStore("User stories from ideas").examples()] == [
        "What must the checkout redesign achieve?"]


async def test_after_training_compare_try_rate_ship_list_and_plan_round_two(tmp_path, ollama):
    from tests.unit.assistant.test_stages import _finished_run
    from tools import registry
    from tools.evaluate.playground import load_ratings

    ollama.responder = lambda body: "As a user, I want the served answer, so that it is checked."
    s = Session(ScriptedLLM(ok=False))
    finished = await _finished_run(tmp_path, s)
    q = await s.resume()
    assert {"try", "eval", "export"} <= set(q["choices"])
    q = await s.send("compare it with the base model")
    # per test category: both answers, the judge per criterion, a winner mark
    compared = [t for t in s.tables() if "side by side" not in t["title"] and "tuned better on" in t["title"]]
    assert compared
    assert compared[0]["columns"] == ["Prompt", "Base model", "Tuned model", "Judge (base→tuned)",
                                                   "Winner"]
    assert all(row[4] in ("🏆 tuned", "🏆 base", "tie") for t in compared for row in t["rows"])
    # try it: the tuned answer streamed from the local adapter, the base on request, a rating kept with the run
    q = await s.send("try it")
    assert q["then"] == "on_try"
    assert "on this machine" in q["text"]
    q = await s.send("Write a user story for exporting reports")
    streamed = [p for p in s.progress if p["title"] == "Tuned model"]
    assert len(streamed) > 1  # the answer grows as it comes
    assert streamed[-1]["status"] == (await s.state())["try_last"]["answer"]
    assert "Tuned model" not in q["text"]  # shown once, as it was streamed; the question says what comes next
    assert {"up", "down", "1", "5", "base", "done"} <= set(q["choices"])
    q = await s.send("also show the base")
    assert [p for p in s.progress if p["title"] == "Base model"]
    q = await s.click("up")
    q = await s.send("Write a user story for dark mode")
    q = await s.send("2")
    ratings = load_ratings(finished)
    assert [(r.prompt, r.variant, r.score, r.thumbs) for r in ratings] == [
        ("Write a user story for exporting reports", "base", 5, "up"),
        ("Write a user story for dark mode", "tuned", 2, None)]
    q = await s.send("done trying")
    assert q["then"] == "on_next"
    # ship it: the name is asked (the next version suggested), the quantisation explained, `ollama run` at the end
    s.ctx.llm.ok = True
    q = await s.click("export")
    assert q["then"] == "on_export_name"
    assert "**PM-UserStories-v1**" in q["text"]
    q = await s.send("PM Stories")
    assert "cannot be a model name" in s.said[-1]
    q = await s.send("PM-Stories")
    assert q["then"] == "on_quantize"
    assert "**PM-Stories-v1**" in q["text"]
    assert set(q["choices"]) == {"none", "q8_0", "q4_K_M"}
    assert "fewer bits" in q["text"]
    q = await s.click("none")
    assert "PM-Stories-v1" in ollama.created
    assert "`ollama run PM-Stories-v1`" in s.said[-1]
    assert q["then"] == "on_next"
    # my models: the list, promote, delete with a confirmation
    q = await s.send("my models")
    assert s.tables("My models")[-1]["rows"][0][0] == "PM-Stories-v1"
    assert q["then"] == "on_models"
    q = await s.click("promote")
    q = await s.click("PM-Stories-v1")
    assert registry.get("PM-Stories-v1").promoted
    assert "⭐" in s.tables("My models")[-1]["rows"][0][0]
    q = await s.send("delete one")
    q = await s.click("PM-Stories-v1")
    assert q["then"] == "on_delete"
    assert registry.list_models()
    q = await s.click("yes")
    assert registry.list_models() == []
    assert "Deleted **PM-Stories-v1**" in s.said[-1]
    assert q["then"] == "on_next"  # nothing left to list: back to what next
    # round 2: the weakest areas with their reasons, from the judge, the ratings and the coverage
    q = await s.send("improve it")
    plan = s.tables("Next round")[-1]
    assert plan["columns"] == ["Area", "Why", "Draft"]
    assert plan["rows"]
    assert all(r[1] for r in plan["rows"])
    assert any(t.startswith("Next round, foundation (the guide's 50–100)") for t in s.said)  # 45 examples so far
    assert q["then"] == "on_improve"
    assert "upload" in q["choices"]


def test_the_classifier_comparison_names_the_majority_baseline():
    from assistant.stages.evaluate import baseline_sentence
    from tools.evaluate.report import confusion_figure

    report = {"heldout": {"base": {"accuracy": 0.4}, "tuned": {"accuracy": 0.8, "labels": ["bug", "idea"],
                                                               "confusion": [[5, 1], [1, 3]]}}}
    said = baseline_sentence(report)
    assert "**Accuracy 80%** on 10 held-out texts" in said
    assert "('bug') would get 60%" in said
    assert "base model gets 40%" in said
    assert "**better than** that baseline" in said
    fig = confusion_figure(["bug", "idea"], [[5, 1], [1, 3]])
    assert fig["data"][0]["type"] == "heatmap"
    assert fig["data"][0]["z"] == [[5, 1], [1, 3]]


async def test_the_quick_path_after_the_interview_makes_a_styled_model_then_training_goes_on(ollama):
    s = Session(ScriptedLLM(ok=False))
    q = await to_data_choice_guided(s)
    assert q["choices"]["quick"] == "Make a styled model without training (about a minute)"
    q = await s.click("quick")
    # Ollama away: a dry run with the Modelfile, and a way on once it is back
    assert q["then"] == "on_quick"
    assert "again" in q["choices"]
    assert "Modelfile" in s.said[-1]
    # the Tasks panel does not tick training as done: nothing was trained
    [moved] = [e for e in s.events if e["ui"] == "stage" and e["stage"] == "deploy"]
    assert {"train", "evaluate"} <= set(moved["skipped"])
    assert {"train", "evaluate"} <= set(q["skipped"])
    assert not q.get("finished")  # nothing is in Ollama yet
    s.ctx.llm.ok = True
    q = await s.send("try again now")
    name = "PM-UserStories-Styled-v1"
    assert name in ollama.created
    assert f"`ollama run {name}`" in s.said[-1]
    assert set(q["choices"]) == {"try", "train"}
    assert q["finished"]  # the Tasks panel ticks Deploy: the styled model is in Ollama
    ollama.responder = lambda body: "As a PM, I want styled answers."
    q = await s.click("try")
    q = await s.send("Write a user story for search")
    assert [p["status"] for p in s.progress if p["title"] == f"**{name}**"][-1] == "As a PM, I want styled answers."
    assert "up" not in q["choices"]  # no run to rate against
    assert q["stage"] == "deploy"
    assert "train" in q["skipped"]
    q = await s.send("done")
    assert q["then"] == "on_data_choice"
    assert "quick" not in q["choices"]


async def to_data_choice_guided(s: Session) -> dict:
    await s.send()
    for answer in ["User stories from ideas", "generation", "engineers", "plain", "skip", "skip"]:
        await s.send(answer)
    return await s.send("confirm")
