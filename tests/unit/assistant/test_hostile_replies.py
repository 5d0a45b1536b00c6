"""A weak assistant model, scripted at its worst: copies of the example, loops, invented choices, answers that come
after minutes. What the user typed is what is stored; nothing is skipped because of a guess; no turn waits long."""

from __future__ import annotations

from typing import Any

from tests.unit.assistant.helpers import ScriptedLLM, Session, Slow
from tools.errors import LLMNonsense
from tools.project import ProjectSpec

EXAMPLE = "turn a one-line feature idea into a user story with acceptance criteria"


async def _spec(s: Session) -> ProjectSpec:
    return ProjectSpec(**(await s.state())["spec"])


async def test_a_copy_of_the_example_a_repeated_slot_and_a_made_up_style_are_never_stored():
    llm = ScriptedLLM({"purpose": EXAMPLE}, {"audience": "I want stories for the team"}, {"house_style": "balanced"})
    s = Session(llm)
    await s.send()
    q = await s.send("I want stories for the team")
    assert (await _spec(s)).purpose == "I want stories for the team"  # the question's example is not the answer
    assert q["slot"] == "task_type"  # "stories" alone does not say the kind: it is asked, not guessed
    q = await s.click("generation")
    assert q["slot"] == "audience"
    q = await s.send("engineers and designers")
    assert (await _spec(s)).audience == "engineers and designers"  # the purpose copied here is not stored
    assert q["slot"] == "house_style"
    q = await s.send("plain, with bullets")
    assert (await _spec(s)).house_style == "plain, with bullets"  # "balanced" is a word the user never said
    assert q["slot"] == "samples"


async def test_a_looping_answer_and_invented_labels_give_way_to_what_was_typed():
    llm = ScriptedLLM({"purpose": "Sort feedback " + "into labels " * 12},
                      {"audience": "support team"}, {"house_style": "one word"},
                      {"labels": ["bug", "praise", "pricing"]})
    s = Session(llm)
    await s.send()
    q = await s.send("Sort incoming feedback into labels")
    assert (await _spec(s)).purpose == "Sort incoming feedback into labels"
    assert (await _spec(s)).task_type == "classification"  # said in the user's own words
    assert q["slot"] == "audience"
    await s.send("support team")
    q = await s.send("one word")
    assert q["slot"] == "labels"
    q = await s.send("bug, feature request, question")
    # "praise" and "pricing" were never listed: the labels are the user's
    assert (await _spec(s)).labels == ["bug", "feature request", "question"]
    assert q["slot"] == "samples"


async def test_an_answer_that_would_take_minutes_is_not_waited_for_and_the_turn_goes_on():
    llm = ScriptedLLM(Slow(200, {"purpose": "Write user stories"}), {"audience": "execs"})
    s = Session(llm, time_limit_s=0.05)  # the turn's limit shrunk for the test: nothing waits 200 s
    await s.send()
    q = await s.send("Write user stories from one-line ideas")
    assert q["slot"] == "audience"
    assert (await _spec(s)).purpose == "Write user stories from one-line ideas"
    assert any("took longer than" in t and "as you typed it" in t for t in s.said)
    thinking = [e for e in s.events if e["ui"] == "thinking"]
    assert [e["on"] for e in thinking[:2]] == [True, False]  # the note came and went
    assert "■ stops the wait" in thinking[0]["text"]
    await s.send("execs")
    assert (await _spec(s)).audience == "execs"  # the next turn asks the model again


async def test_not_sure_leaves_a_question_open_instead_of_storing_it_and_a_question_is_answered():
    s = Session(ScriptedLLM(ok=False))
    await s.send()
    q = await s.send("Write PRD drafts")
    assert q["slot"] == "audience"  # "write …": the kind is said
    q = await s.send("what is LoRA?")
    assert any("Now, back to where we were" in t for t in s.said)
    assert q["slot"] == "audience"
    q = await s.send("not sure")
    assert q["slot"] == "audience"
    assert "skip" in q["text"].lower()
    q = await s.send("no idea really")
    assert q["slot"] == "house_style"  # left open after asking twice, never filled with "not sure"
    q = await s.send("short and plain")
    q = await s.send("skip")
    q = await s.send("Not sure")
    assert q["kind"] == "confirm"
    spec = await _spec(s)
    assert spec.audience == ""
    assert spec.never_do == []  # "not sure" is not a rule


async def test_no_words_at_the_labels_question_mean_a_model_that_writes():
    s = Session(ScriptedLLM(ok=False))
    await s.send()
    await s.send("Help with support tickets")
    await s.click("classification")
    await s.send("support")
    q = await s.send("friendly")
    assert q["slot"] == "labels"
    q = await s.send("none - it writes stories for the team")
    spec = await _spec(s)
    assert spec.task_type == "generation"
    assert spec.labels == []
    assert q["slot"] == "samples"


async def _to_confirm(s: Session) -> dict:
    await s.send()
    for answer in ["Write user stories from one-line ideas", "engineers", "plain", "skip", "skip"]:
        q = await s.send(answer)
    assert q["kind"] == "confirm"
    return q


async def test_a_change_typed_at_the_confirmation_is_made_and_a_name_is_never_a_yes():
    s = Session(ScriptedLLM(ok=False))
    q = await _to_confirm(s)
    assert "Write user stories from one-line ideas" in q["spec_md"]  # short purposes are the whole name
    q = await s.send("change the house style to: short bullets, no jargon")
    assert q["kind"] == "confirm"
    assert (await _spec(s)).house_style == "short bullets, no jargon"
    assert "short bullets, no jargon" in q["spec_md"]
    q = await s.send("change the name to: yes")
    assert (await _spec(s)).name == "Write user stories from one-line ideas"
    assert "cannot be the project's name" in s.said[-1]
    q = await s.send("go to the project")
    assert "Looks right" in s.said[-1]  # said where we are instead of showing the same thing again in silence
    q = await s.send("let's draft some examples together")
    assert q["then"] != "on_confirm"
    assert any("Saved your project" in t for t in s.said)


async def test_lets_draft_together_goes_straight_to_drafting_with_the_model():
    from tests.unit.assistant.test_journey import DraftingLLM, batch

    s = Session(DraftingLLM(*[batch("saved carts", "gift cards")] * 6))
    await s.send()
    for answer in ["User stories from ideas", "generation", "eng", "plain", "skip", "skip"]:
        await s.send(answer)
    q = await s.send("let's draft some examples together")
    assert q["then"] == "on_review"
    assert "saved carts" in q["text"]


async def test_an_invented_choice_or_setting_is_never_acted_on():
    llm = ScriptedLLM()  # the interview's readings come back empty: each answer is taken as typed
    s = Session(llm)
    await _to_confirm(s)
    await s.send("confirm")
    llm.updates.extend([{"kind": "choice", "choice": "delete_everything"},
                              {"kind": "setting", "setting": "epochs", "value": "9"},
                              {"kind": "navigate", "target": "deploy"}])
    for text in ["hmm, the thing", "whatever works best", "my data please"]:
        q = await s.send(text)
        assert q["then"] == "on_data_choice"
        assert "I did not get that" in s.said[-1]
    assert not (await s.state()).get("train_sets")


class LoopingDrafts:
    """Drafting answers: a looping batch (the model layer's repetition stop), then one story per call."""

    def __init__(self, *replies: Any) -> None:
        self.replies = list(replies)
        self.sizes: list[int] = []

    def __call__(self, prompt: str, schema: Any) -> Any:
        self.sizes.append(schema.model_json_schema()["properties"]["examples"]["maxItems"])
        nxt = self.replies.pop(0)
        if isinstance(nxt, Exception):
            raise nxt
        return nxt


async def test_a_weak_model_drafts_fewer_but_checked_examples_one_per_call():
    from tests.unit.assistant.test_journey import DraftingLLM, story, to_data_choice

    looping = {"request": "Write a user story", "answer": "As a user, I want it. " * 30}
    replies = LoopingDrafts(LLMNonsense("The assistant model (phi4-mini) started repeating itself.", ""),
                            {"examples": [story(1, "saved carts")]}, {"examples": [looping]},
                            *[{"examples": []}] * 6)
    llm = DraftingLLM()
    llm.structured = lambda prompt, schema, system=None: schema.model_validate(replies(prompt, schema))  # type: ignore
    s = Session(llm)
    await to_data_choice(s)
    q = await s.click("draft")
    assert replies.sizes[0] == 2
    assert set(replies.sizes[1:]) == {1}  # after the looping batch, one example per call
    assert q["then"] == "on_review"
    assert "saved carts" in q["text"]
    assert any("1 of the 5 drafts passed the checks" in t for t in s.said)
    assert any(e["ui"] == "progress" and "1 of 5" in e["status"] for e in s.events)


async def test_a_model_that_cannot_draft_is_met_with_a_bigger_one_to_pull_never_a_setting():
    from tests.unit.assistant.test_journey import DraftingLLM, to_data_choice
    from tools.settings import assistant_model

    llm = DraftingLLM()

    def loops(prompt: str, schema: Any, system: str | None = None) -> Any:
        raise LLMNonsense("The assistant model (phi4-mini) started repeating itself instead of answering.", "")

    llm.structured = loops  # type: ignore[method-assign]
    s = Session(llm)
    await to_data_choice(s)
    q = await s.click("draft")
    assert q["then"] == "on_weak_drafts"
    assert "MTW_" not in q["text"]
    assert q["choices"]["better"] == "Get qwen2.5:7b (4.7 GB)"
    assert "upload" in q["choices"]
    q = await s.click("better")
    assert [p["completed"] for p in s.progress if p["key"] == "pull"] == [0, 50, 100]
    assert llm.switched_to.model == "qwen2.5:7b"
    assert assistant_model() == "qwen2.5:7b"  # kept for the next messages and conversations
    assert q["then"] == "on_after_drafts"


async def test_a_looping_rewrite_is_not_shown_and_says_why():
    from tests.unit.assistant.test_journey import TOPICS, DraftingLLM, batch, to_data_choice

    looping = {"request": "Write a user story about saved carts", "answer": "saved carts " * 40}
    llm = DraftingLLM(batch(*TOPICS[:3]), batch(*TOPICS[3:5], start=3), looping, looping, looping)
    s = Session(llm)
    await to_data_choice(s)
    q = await s.click("draft")
    shown = q["text"]
    q = await s.send("make it shorter")
    assert "could not rewrite" in s.said[-1]
    assert "repeated itself" in s.said[-1]
    assert "turned away (the draft made no sense" in llm.draft_prompts[-1]  # the next try is told why
    assert q["text"] == shown  # the same draft, unchanged, is still the one to keep or drop


async def test_what_is_lora_gets_the_guides_own_line_when_the_model_answers_with_a_question(ollama):
    ollama.enqueue("What kind of model would you like to train?")
    s = Session(ScriptedLLM())
    await s.send()
    q = await s.send("what is LoRA?")
    out = s.said[-1]
    assert "What kind of model" not in out
    assert "**LoRA**: trains a small add-on" in out.splitlines()[2]  # the line that answers it comes first
    assert "it asked a question back" in out
    assert q["slot"] == "purpose"  # the interview goes on where it was
    assert ollama.requests_to("/api/chat")[0].body["options"]["num_predict"] == 320


async def test_a_grounded_answer_cites_only_the_entry_it_used(ollama):
    ollama.enqueue("LoRA trains a small add-on, the adapter, instead of the whole model [training-terms].")
    s = Session(ScriptedLLM())
    await s.send()
    await s.send("what is LoRA?")
    out = s.said[-1]
    assert out.startswith("LoRA trains a small add-on")
    assert out.count("_From the troubleshooting guide: *") == 1
    assert out.split("_From the troubleshooting guide: ")[1].count("*") == 2  # one title, not a list of them


async def test_yes_is_never_a_model_name_back_at_the_size_runs_nothing_and_q8_is_q8_0(tmp_path, ollama):
    from tests.unit.assistant.test_stages import _finished_run
    from tools import registry

    s = Session(ScriptedLLM(ok=False))
    await _finished_run(tmp_path, s)
    await s.resume()
    s.ctx.llm.ok = True  # Ollama is up for the export
    q = await s.click("export")
    q = await s.send("yes")  # "yes" to "I suggest PM-UserStories-v1" is that name
    assert q["then"] == "on_quantize"
    assert "PM-UserStories-v1" in q["text"]
    q = await s.send("back")
    assert q["then"] == "on_next"  # the menu, with no evaluation started on the way
    assert not any("Comparing" in t for t in s.said)
    assert (await s.state()).get("export_name") == ""
    q = await s.click("export")
    assert q["then"] == "on_export_name"  # asked again, never reused silently
    q = await s.send("cancel")
    assert q["then"] == "on_next"
    q = await s.click("export")
    q = await s.send("PM-Stories")
    q = await s.send("q8")
    assert ollama.requests_to("/api/create")[-1].body["quantize"] == "q8_0"
    assert [m.name for m in registry.list_models()] == ["PM-Stories-v1"]
    assert not any(m.name.lower().startswith(("yes", "cancel", "back")) for m in registry.list_models())
