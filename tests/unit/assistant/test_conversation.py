"""Talking to the wizard at every step: questions, settings, navigation, stale buttons, faults, no dead ends."""

import json
from pathlib import Path

import pytest

from assistant import routing
from assistant.state import nest
from tests.unit.assistant.helpers import ScriptedLLM, Session
from tools import jobs
from tools.errors import LLMDropped, LLMServerError, StructuredOutputError
from tools.project import ProjectSpec, load_spec, save_spec


async def to_data_choice(s: Session, purpose: str = "User stories from ideas") -> dict:
    await s.send()
    for answer in [purpose, "generation", "engineers", "plain", "skip", "skip"]:
        q = await s.send(answer)
    q = await s.send("confirm")
    assert q["then"] == "on_data_choice"
    return q


async def to_plan(s: Session) -> dict:
    await to_data_choice(s)
    await s.send("sample")
    await s.send("continue")
    return await s.send("tiny")


# ------------------------------------------------------------------ the parser, without a model

@pytest.mark.parametrize(("text", "kind", "value"), [
    ("use 1 epoch", "setting", {"epochs": "1"}),
    ("learning rate 1e-4 please", "setting", {"learning_rate": "1e-4"}),
    ("batch size 2", "setting", {"batch_size": "2"}),
    ("pick qwen2.5-1.5b", "setting", {"base_model": "qwen2.5-1.5b"}),
    ("a smaller model", "setting", {"base_model": "smaller"}),
    ("go back to the dataset", "navigate", "dataset"),
    ("start over", "navigate", "start_over"),
    ("where are we?", "status", None),
    ("what is an epoch?", "question", None),
    ("Why is my loss flat", "question", None),
    ("yes", "answer", "start"),
    ("Start training", "answer", "start"),
])
def test_the_parser_reads_plain_words_at_a_choice(text, kind, value):
    q = {"id": 1, "text": "Ready?", "choices": {"start": "Start training", "dataset": "Back to the dataset"}}
    intent = routing.parse(text, q)
    assert intent is not None
    assert intent["kind"] == kind
    if value is not None:
        assert intent["value"] == value


def test_three_typed_letters_never_pick_a_choice_that_starts_work_or_deletes():
    plan = {"id": 1, "text": "Ready?", "choices": {"start": "Start training", "dataset": "Back to the dataset"},
            "effects": ["start"]}
    guess = routing.parse("ain", plan)
    assert guess == {"kind": "answer", "value": "start", "text": "ain", "by": "parser", "partial": True}
    delete = {"id": 2, "text": "Delete PM-Test-v1?", "effects": ["yes", "ollama"],
              "choices": {"yes": "Delete from the list", "ollama": "Delete from the list and from Ollama",
                          "no": "Keep it"}}
    assert routing.parse("and", delete)["partial"]
    # the words themselves, and a clear yes, still answer
    assert "partial" not in routing.parse("Start training", plan)
    assert "partial" not in routing.parse("yes", delete)
    assert routing.parse("back to the dataset", plan)["value"] == "dataset"
    assert routing.parse("keep", delete)["value"] == "no"  # harmless: a part of its label picks it


def test_a_question_at_a_free_text_question_is_not_an_answer():
    q = {"id": 1, "text": "Anything it must never do?", "free_text": True, "optional": True, "choices": {}}
    assert routing.parse("what is an epoch?", q)["kind"] == "question"
    assert routing.parse("why is my loss flat?", q)["kind"] == "question"
    assert routing.parse("skip", q) == {"kind": "answer", "value": "", "text": "skip", "by": "parser"}
    assert routing.parse("Never invent metrics", q)["value"] == "Never invent metrics"


# ------------------------------------------------------------------ the graph

async def test_a_question_at_a_free_text_question_is_answered_and_the_question_asked_again():
    s = Session(ScriptedLLM(ok=False))
    await s.send()
    for answer in ["Release notes", "generation", "customers", "friendly"]:
        q = await s.send(answer)
    assert q["slot"] == "samples"
    q = await s.send("what is an epoch?")
    assert q["slot"] == "samples"
    assert "epoch" in s.said[-1].lower()
    q = await s.click("skip")
    assert q["slot"] == "never_do"
    q = await s.send("why is my loss flat?")
    assert q["slot"] == "never_do"
    q = await s.click("skip")
    assert q["kind"] == "confirm"
    spec = (await s.state())["spec"]
    assert spec["samples"] == []
    assert spec["never_do"] == []


async def test_a_question_at_every_kind_of_choice_is_answered_then_asked_again():
    s = Session(ScriptedLLM(ok=False))
    q = await to_data_choice(s)
    q2 = await s.send("what is a validation set?")
    assert q2["id"] == q["id"]
    assert q2["then"] == "on_data_choice"
    await s.send("sample")
    q = await s.send("continue")
    q = await s.send("tiny")
    q2 = await s.send("How long will this take?")
    assert q2["then"] == "on_confirm_training"
    q = await s.click("start")
    assert q["kind"] == "training"
    q2 = await s.send("why is my loss flat?")
    assert q2["kind"] == "training"
    assert q2["run_dir"] == q["run_dir"]
    jobs.stop_run(q["run_dir"])


async def test_a_part_of_a_label_asks_before_training_starts_or_a_model_is_deleted(ollama):
    from tools import registry

    s = Session(ScriptedLLM(ok=False))
    q = await to_plan(s)
    q = await s.send("ain")
    assert q["kind"] != "training"
    assert not (await s.state()).get("run_dir")
    assert s.said[-1] == "Did you mean **Start training**? Click it, or say yes."
    q = await s.send("yes")
    assert q["kind"] == "training"  # a clear yes starts it
    jobs.stop_run(q["run_dir"])

    registry.register(registry.ModelRecord(name="PM-Test-v1", base_model="tiny-random", route="merged",
                                           ollama_tag="PM-Test-v1"))
    ollama.created["PM-Test-v1"] = {}
    s = Session(ScriptedLLM(ok=False), thread="t2")
    await to_data_choice(s, purpose="Release notes for customers")
    await s.send("my models")
    await s.send("delete one")
    q = await s.click("PM-Test-v1")
    assert q["then"] == "on_delete"
    q = await s.send("and")
    assert [m.name for m in registry.list_models()] == ["PM-Test-v1"]
    assert "PM-Test-v1" in ollama.created
    assert "Delete from the list and from Ollama" in s.said[-1]
    await s.send("yes")
    assert registry.list_models() == []
    assert "PM-Test-v1" not in ollama.created


async def test_a_stale_button_is_ignored_with_a_note():
    s = Session(ScriptedLLM(ok=False))
    await s.send()
    for answer in ["PRD drafts", "generation", "execs", "formal", "skip", "skip"]:
        q = await s.send(answer)
    confirm = q
    q = await s.click("edit")
    assert q["then"] == "on_edit"
    # the old "Looks right" button is clicked after the question changed
    q = await s.click("confirm", question=confirm)
    assert q["then"] == "on_edit"
    assert "earlier question" in s.said[-1]
    # three fast clicks of one button answer one question
    q = await s.click("audience")
    first = q
    assert q["slot"] == "audience"
    await s.click("audience", question={**confirm, "id": first["id"] - 1, "choices": {"audience": "x"}})
    assert (await s.state())["question"]["slot"] == "audience"


async def test_a_setting_said_at_the_plan_is_checked_and_the_plan_made_again():
    s = Session(ScriptedLLM(ok=False))
    q = await to_plan(s)
    assert q["then"] == "on_confirm_training"
    q = await s.send("use 1 epoch")
    assert any(t.startswith("**Changed:** epochs → 1") for t in s.said)
    plan = [t for t in s.said if t.startswith("**Plan:**")][-1]
    assert "1 epochs" in plan
    assert q["then"] == "on_confirm_training"
    q = await s.send("learning rate 5")
    assert "learning rate 5" in s.said[-1]
    assert "1e-5 and 1e-2" in s.said[-1]
    assert (await s.state())["train_sets"] == {"epochs": "1"}
    q = await s.send("batch size 2")
    assert (await s.state())["train_sets"] == {"epochs": "1", "batch_size": "2"}
    q = await s.click("start")
    record = jobs.get_run(q["run_dir"])
    assert "epochs=1" in record.message
    assert "batch_size=2" in record.message
    jobs.stop_run(q["run_dir"])


async def test_going_back_to_the_dataset_from_the_plan_and_from_the_check():
    s = Session(ScriptedLLM(ok=False))
    await to_plan(s)
    q = await s.send("go back to the dataset")
    assert q["then"] == "on_data_choice"
    assert "keep" in q["choices"]
    q = await s.send("keep")
    assert q["then"] == "on_checked"
    q = await s.send("back")
    assert q["then"] == "on_data_choice"


async def test_where_are_we_says_the_stage_and_asks_again():
    s = Session(ScriptedLLM(ok=False))
    q = await to_data_choice(s)
    q2 = await s.send("where are we?")
    assert q2["id"] == q["id"]
    assert "Build the dataset" in s.said[-1]
    assert "User stories" in s.said[-1]


async def test_stop_then_resume_continues_the_same_run(tmp_path):
    s = Session(ScriptedLLM(ok=False))
    await to_plan(s)
    q = await s.click("start")
    run_dir = q["run_dir"]
    q = await s.send("stop")
    assert "Stopping" in s.said[-1] or "not running" in s.said[-1]
    # the live view hands back how the run ended
    q = await s.send({"outcome": {"status": "stopped", "step": 3, "resumable": True}})
    assert q["then"] == "on_after_run"
    assert {"resume", "restart", "dataset"} <= set(q["choices"])
    assert "stopped at step 3" in q["text"]
    q = await s.click("resume")
    assert q["kind"] == "training"
    assert q["run_dir"] == run_dir
    assert "--resume" in jobs.get_run(run_dir).message
    jobs.stop_run(run_dir)


async def test_a_failed_run_offers_its_fix_and_restarts_with_it():
    s = Session(ScriptedLLM(ok=False))
    await to_plan(s)
    q = await s.click("start")
    jobs.stop_run(q["run_dir"])
    outcome = {"status": "failed", "message": "Training ran out of memory on cpu.", "fix_text": "Use batch 1.",
               "fix_sets": {"batch_size": 1, "gradient_checkpointing": True}}
    q = await s.send({"outcome": outcome})
    assert "out of memory" in q["text"]
    assert "Use batch 1" in q["text"]
    assert q["choices"]["apply_fix"] == "Apply the fix and restart"
    assert "dataset" in q["choices"]
    q = await s.click("apply_fix")
    assert (await s.state())["train_sets"] == {"batch_size": "1", "gradient_checkpointing": "True"}
    assert any("**Changed:** the fix" in t for t in s.said)
    assert q["then"] == "on_confirm_training"


async def test_too_few_examples_offers_a_way_on(tmp_path):
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Write story {i}"},
                                                    {"role": "assistant", "content": f"As a user {i}"}]}) + "\n"
                           for i in range(4)))
    s = Session(ScriptedLLM(ok=False))
    await to_data_choice(s)
    q = await s.send("upload")
    q = await s.send({"path": str(few), "name": "few.jsonl"})
    assert q["then"] == "on_checked"
    assert set(q["choices"]) == {"upload_more", "anyway"}
    q = await s.send("continue anyway")
    assert q["stage"] == "configure"
    assert (await s.state())["train_sets"]["min_examples"] == "1"


async def test_an_upload_more_adds_to_the_dataset_and_same_names_never_overwrite(tmp_path):
    def rows(start: int) -> str:
        return "".join(json.dumps({"messages": [{"role": "user", "content": f"Write user story number {i}"},
                                                {"role": "assistant", "content": f"As a PM I want {i} " * 4}]})
                       + "\n" for i in range(start, start + 6))

    a, b = tmp_path / "a" / "mine.jsonl", tmp_path / "b" / "mine.jsonl"
    for path, start in ((a, 0), (b, 100)):
        path.parent.mkdir()
        path.write_text(rows(start))
    s = Session(ScriptedLLM(ok=False))
    await to_data_choice(s)
    await s.send("upload")
    q = await s.send({"path": str(a), "name": "mine.jsonl"})
    assert "upload_more" in q["choices"]
    await s.send("upload_more")
    q = await s.send({"path": str(b), "name": "mine.jsonl"})
    assert any("12 examples" in t for t in s.said)
    from tools.dataset.store import DatasetStore

    sources = [v.note for v in DatasetStore("User stories from ideas").versions()]
    assert sources.count("uploaded mine.jsonl") == 2  # both same-name uploads kept, and the combined version
    assert len(sources) == 3


async def test_empty_and_image_uploads_get_a_plain_message(tmp_path):
    empty, png = tmp_path / "e.jsonl", tmp_path / "p.jsonl"
    empty.write_bytes(b"")
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    s = Session(ScriptedLLM(ok=False))
    await to_data_choice(s)
    q = await s.send("upload")
    q = await s.send({"path": str(empty), "name": "e.jsonl"})
    assert "empty (0 bytes)" in s.said[-1]
    assert q["kind"] == "file"
    q = await s.send({"path": str(png), "name": "p.jsonl"})
    assert "looks like an image" in s.said[-1]
    assert q["kind"] == "file"
    q = await s.send("Choose another way")
    assert q["then"] == "on_data_choice"


async def test_a_project_name_in_use_is_never_overwritten():
    first = ProjectSpec(name="User stories from ideas", purpose="the first one", task_type="generation",
                        audience="a", house_style="h")
    save_spec(first, "another-thread")
    s = Session(ScriptedLLM(ok=False))
    await s.send()
    for answer in ["User stories from ideas", "generation", "engineers", "plain", "skip", "skip"]:
        q = await s.send(answer)
    q = await s.send("confirm")
    assert q["then"] == "on_name_taken"
    assert "already exists" in q["text"]
    q = await s.send("Give a new name")
    assert q["slot"] == "name"
    q = await s.send("Stories v2")
    q = await s.send("confirm")
    assert q["then"] == "on_data_choice"
    assert load_spec("User stories from ideas").purpose == first.purpose  # the first project is untouched
    assert load_spec("Stories v2").audience == "engineers"


async def test_flaky_model_is_retried_then_the_turn_is_guided_and_the_next_turn_asks_it_again():
    llm = ScriptedLLM(ok=True)
    s = Session(llm)
    await s.send()
    llm.updates.extend([LLMServerError("Ollama had a server error (HTTP 500: boom).", "Try again."),
                        {"purpose": "Write PRDs", "task_type": "generation"}])
    q = await s.send("I want PRDs written")
    assert q["slot"] == "audience"
    assert len(llm.prompts) == 2
    llm.updates.extend([LLMDropped("The connection to Ollama dropped in the middle of an answer.", "Try again."),
                        StructuredOutputError("The assistant model twice answered in the wrong shape.", "")])
    q = await s.send("engineers")
    assert any("wrong shape" in t and "as you typed it" in t for t in s.said)  # each fault says what it was
    assert (await s.state())["spec"]["audience"] == "engineers"
    assert q["slot"] == "house_style"
    llm.updates.append({"house_style": "short"})
    await s.send("keep it short please")
    assert (await s.state())["spec"]["house_style"] == "short"  # the model is asked again on the next turn
    assert (await s.state())["llm_ok"] is True


async def test_with_the_model_a_choice_said_in_other_words_is_understood_but_effects_wait_for_a_yes():
    llm = ScriptedLLM(ok=True)
    s = Session(llm)
    await s.send()
    llm.updates.extend([{"purpose": "User stories", "task_type": "generation"}, {"audience": "eng"},
                        {"house_style": "plain"}])
    for answer in ["User stories", "generation", "eng", "plain", "skip", "skip"]:
        await s.send(answer)
    await s.send("confirm")
    llm.updates.append({"kind": "choice", "choice": "sample"})
    q = await s.send("let me begin with the examples you already have")
    assert q["then"] == "on_checked"
    q = await s.send("continue")
    q = await s.send("tiny")
    llm.updates.append({"kind": "choice", "choice": "start"})
    q = await s.send("alright let's do this thing")
    assert q["then"] == "on_confirm_training"
    assert "Did you mean **Start training**" in s.said[-1]
    q = await s.send("yes")
    assert q["kind"] == "training"
    jobs.stop_run(q["run_dir"])


async def test_a_crash_between_two_steps_leaves_an_open_question():
    s = Session(ScriptedLLM(ok=False))
    await s.send()
    for answer in ["PRD drafts", "generation", "execs", "formal", "skip", "skip"]:
        await s.send(answer)
    # "Looks right" arrived and was understood, then the process died before the next step ran
    await s.graph.aupdate_state(s.cfg, {"reply": "confirm"}, as_node="listen")
    state = await s.graph.aget_state(s.cfg)
    assert state.next == ("understand",)
    assert not any(t.interrupts for t in state.tasks)
    q = await s.resume()  # what the chat does when it finds unfinished work
    assert q["then"] == "on_data_choice"
    assert any("Saved your project" in t for t in s.said)


async def test_after_an_export_the_hub_always_offers_a_way_on():
    s = Session(ScriptedLLM(ok=False))
    await to_data_choice(s)
    await s.graph.aupdate_state(s.cfg, nest({"run_dir": "/nowhere", "exported_name": "PM-X-v1", "evaluated": True,
                                             "checked_export": True,
                                             "reply": {"outcome": {"status": "done"}}}), as_node="listen")
    q = await s.resume()
    assert "ollama run PM-X-v1" in q["text"]
    assert {"score", "models", "new"} <= set(q["choices"])
    q = await s.send("my models")
    assert q["then"] == "on_next"
    assert "No models are registered yet" in s.said[-1]
    q = await s.send("start over")
    assert q["then"] == "on_start_over"
    q = await s.send("yes")
    assert q["slot"] == "purpose"
    assert (await s.state())["spec"]["purpose"] == ""


async def test_the_settings_panel_changes_the_plan_like_words_do():
    from tools.train.setting import panel, panel_changes

    before = {w["id"]: w["initial"] for w in panel()}
    changed = panel_changes(before, {**before, "epochs": 1.0, "base_model": "automatic"})
    assert changed == {"epochs": "1"}
    s = Session(ScriptedLLM(ok=False))
    await to_plan(s)
    q = await s.send({"settings": changed})
    assert any(t.startswith("**Changed:** epochs → 1") for t in s.said)
    assert q["then"] == "on_confirm_training"
    q = await s.send({"settings": {"base_model": "no-such-model"}})
    assert "not a base model I know" in s.said[-1]
    assert q["then"] == "on_confirm_training"


def test_a_prompt_to_try_is_the_answer_even_when_it_is_a_question():
    q = {"id": 3, "text": "Type a prompt", "free_text": True, "verbatim": True, "choices": {"done": "Done trying"}}
    assert routing.parse("What is an OKR?", q) == {"kind": "answer", "value": "What is an OKR?", "text":
                                                   "What is an OKR?", "by": "parser"}
    assert routing.parse("done trying", q)["value"] == "done"


async def test_the_same_file_again_adds_nothing_and_a_continued_project_offers_its_dataset_by_name():
    sample = str(Path(__file__).resolve().parents[3] / "examples" / "pm_dataset.jsonl")
    s = Session(ScriptedLLM(ok=False))
    await to_data_choice(s)
    await s.send("upload")
    q = await s.send({"path": sample, "name": "pm_dataset.jsonl"})
    q = await s.click("upload_more")
    q = await s.send({"path": sample, "name": "pm_dataset.jsonl"})
    assert any("is in your dataset already, so nothing was added" in t for t in s.said)
    assert any("**45 examples**" in t for t in s.said[-3:])  # still 45, not 90
    other = Session(ScriptedLLM(ok=False), thread="t2")
    q = await to_name_taken(other)
    q = await other.click("continue")
    assert q["then"] == "on_data_choice"
    assert q["choices"]["keep"] == "Keep my dataset (45 examples, from pm_dataset.jsonl)"


async def to_name_taken(s: Session) -> dict:
    await s.send()
    for answer in ["User stories from ideas", "generation", "engineers", "plain", "skip", "skip"]:
        await s.send(answer)
    q = await s.send("confirm")
    assert q["then"] == "on_name_taken"
    return q


async def test_a_run_that_finished_without_learning_offers_its_fix_in_one_click():
    s = Session(ScriptedLLM(ok=False))
    await to_plan(s)
    q = await s.click("start")
    jobs.stop_run(q["run_dir"])
    health = {"code": "flat_loss", "message": "The training loss has hardly moved in 36 steps (3.31 → 3.10): the "
                                              "model is not learning from your examples.",
              "fix_text": "Raise the learning rate to 1e-3.", "fix": {"learning_rate": 1e-3}}
    q = await s.send({"outcome": {"status": "done", "step": 36, "health": health}})
    assert "Training finished" in q["text"]
    assert "not learning" in q["text"]
    assert q["choices"] == {"apply_fix": "Apply the fix and restart (learning rate 0.001)",
                            "keep": "Go on with this model"}
    assert "apply_fix" in q["effects"]  # restarting is work: a click or a clear yes
    q = await s.click("apply_fix")
    assert (await s.state())["train_sets"] == {"learning_rate": "0.001"}
    assert any("**Changed:** the fix — learning rate 0.001" in t for t in s.said)
    assert q["then"] == "on_confirm_training"


async def test_a_run_that_finished_without_learning_can_still_go_on():
    s = Session(ScriptedLLM(ok=False))
    await to_plan(s)
    q = await s.click("start")
    jobs.stop_run(q["run_dir"])
    health = {"code": "flat_loss", "message": "Not learning.", "fix_text": "Raise it.", "fix": {"learning_rate": 1e-3}}
    q = await s.send({"outcome": {"status": "done", "step": 36, "health": health}})
    q = await s.send("go on with this model")
    assert q["then"] == "on_next"
    assert "eval" in q["choices"]
