from assistant.slots import SCHEMAS
from tests.unit.assistant.helpers import ScriptedLLM, Session
from tools.errors import OllamaUnavailable
from tools.project import ProjectSpec, load_spec
from tools.settings import get_settings


async def test_interview_fills_the_spec_from_free_text_and_saves_it():
    llm = ScriptedLLM(
        {"purpose": "Write user stories the way the team writes them", "name": "Story writer"},
        {"audience": "engineers"},
        {"house_style": "plain words, bullets"},
    )
    s = Session(llm)
    q = await s.send()
    assert q["slot"] == "purpose"
    assert any("Model Training Wizard" in t for t in s.said)
    q = await s.send("I want user stories written the way my team writes them")
    assert q["slot"] == "audience"  # "user stories written": the kind is in the user's own words
    q = await s.send("our engineers")
    assert q["slot"] == "house_style"
    q = await s.send("plain words, bullet points")
    assert q["slot"] == "samples"
    assert q["optional"]
    q = await s.send("As a user I want X so that Y")
    assert q["slot"] == "never_do"
    q = await s.send("Never invent metrics, dates or deadlines")
    assert q["kind"] == "confirm"
    # the model's "name" was a guess nobody asked for: the name comes from the purpose, cut at a natural break
    assert "Write user stories" in q["spec_md"]
    assert "Story writer" not in q["spec_md"]
    assert "engineers" in q["spec_md"]
    q = await s.send("confirm")
    assert q["then"] == "on_data_choice"  # on to the dataset
    saved = load_spec("Write user stories")
    assert saved.samples == ["As a user I want X so that Y"]  # samples are kept verbatim, not via the LLM
    assert saved.never_do == ["Never invent metrics, dates or deadlines"]  # one rule, as typed
    assert saved.task_type == "generation"
    assert any("Saved your project" in t for t in s.said)
    assert (get_settings().home / "projects" / "write-user-stories" / "spec.json").is_file()


async def test_not_sure_is_asked_again_in_other_words_and_never_stored():
    llm = ScriptedLLM({}, {})
    s = Session(llm)
    await s.send()
    q = await s.send("hmm, not sure")
    assert q["slot"] == "purpose"
    assert q["text"].startswith("I did not quite get")
    assert llm.prompts == []  # nothing to read: the model is not asked
    # after a follow-up the answer is taken as typed rather than asking forever
    q = await s.send("summaries of meeting notes")
    assert (await s.state())["spec"]["purpose"] == "summaries of meeting notes"


async def test_guided_mode_without_ollama_uses_buttons_and_says_what_needs_ollama():
    s = Session(ScriptedLLM(ok=False))
    q = await s.send()
    assert any("guided form" in t for t in s.said)
    assert any("ollama" in t.lower() for t in s.said)
    q = await s.send("Sort support tickets")
    assert q["slot"] == "task_type"
    assert "classification" in q["choices"]
    q = await s.send("classification")
    q = await s.send("support team")
    q = await s.send("one word")
    assert q["slot"] == "labels"
    q = await s.send("skip")
    assert q["slot"] == "labels"
    assert "at least two" in q["text"]
    q = await s.send("bug\nfeature request\nquestion")
    q = await s.send("skip")
    q = await s.send("skip")
    assert q["kind"] == "confirm"
    spec = ProjectSpec(**(await s.state())["spec"])
    assert spec.labels == ["bug", "feature request", "question"]
    assert spec.samples == []
    assert spec.never_do == []


async def test_empty_message_repeats_the_question():
    s = Session(ScriptedLLM(ok=False))
    await s.send()
    q = await s.send("   ")
    assert q["slot"] == "purpose"
    assert any("empty" in t for t in s.said)


async def test_very_long_answer_is_trimmed_and_said_so():
    s = Session(ScriptedLLM(ok=False))
    await s.send()
    await s.send("x" * 100_000)
    assert len((await s.state())["spec"]["purpose"]) == 4000
    assert any("100,000 characters" in t for t in s.said)


async def test_ollama_dying_mid_interview_falls_back_for_that_turn_only():
    s = Session(ScriptedLLM(OllamaUnavailable("Ollama is not running.", "Start it with `ollama serve`."),
                            {"audience": "customers"}))
    await s.send()
    q = await s.send("release notes for customers")
    assert q["slot"] == "task_type"
    st = await s.state()
    assert st["spec"]["purpose"] == "release notes for customers"  # taken as typed this turn
    assert any("Ollama is not running" in t and "as you typed it" in t and "ollama serve" in t for t in s.said)
    await s.send("generation")
    q = await s.send("our customers, the people who buy it")
    assert (await s.state())["spec"]["audience"] == "customers"  # the next turn asks the model again


async def test_change_something_asks_that_slot_again():
    s = Session(ScriptedLLM(ok=False))
    await s.send()
    for answer in ["PRD drafts", "generation", "execs", "formal", "skip", "skip"]:
        q = await s.send(answer)
    assert q["kind"] == "confirm"
    q = await s.send("edit")
    assert q["then"] == "on_edit"
    assert "audience" in q["choices"]
    q = await s.send("audience")
    assert q["slot"] == "audience"
    q = await s.send("the whole company")
    assert q["kind"] == "confirm"
    assert "the whole company" in q["spec_md"]


async def test_unwritable_home_keeps_the_conversation(monkeypatch, tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    monkeypatch.setenv("MTW_HOME", str(blocker / "home"))
    get_settings.cache_clear()
    s = Session(ScriptedLLM(ok=False))
    await s.send()
    for answer in ["PRD drafts", "generation", "execs", "formal", "skip", "skip"]:
        await s.send(answer)
    q = await s.send("confirm")
    assert any("MTW_HOME" in t for t in s.said)
    assert q["then"] == "on_data_choice"
    assert (await s.state())["spec"]["purpose"] == "PRD drafts"


def test_each_interview_answer_is_read_for_its_own_slot_only():
    # the schema the model must fill allows no other field; a field it adds anyway is dropped, never stored
    assert SCHEMAS["audience"].model_json_schema()["additionalProperties"] is False
    assert SCHEMAS["audience"].model_validate({"audience": "eng", "house_style": "eng"}).model_dump() == {
        "audience": "eng"}


async def test_missing_assistant_model_is_offered_for_download_with_progress():
    s = Session(ScriptedLLM({"purpose": "weekly status updates"}, missing=True))
    q = await s.send()
    assert q["then"] == "pull_assistant_model"
    assert "pull" in q["choices"]
    q = await s.click("pull")
    assert [p["completed"] for p in s.progress] == [0, 50, 100]
    assert any("downloaded and ready" in t for t in s.said)
    assert q["slot"] == "purpose"
    assert (await s.state())["llm_ok"] is True


async def test_declining_the_download_continues_as_a_guided_form():
    s = Session(ScriptedLLM(missing=True))
    await s.send()
    q = await s.send("skip")
    assert q["slot"] == "purpose"
    assert any("guided form" in t for t in s.said)
    assert (await s.state())["llm_ok"] is False
