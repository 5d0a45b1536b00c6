"""What the wizard makes of input that is no answer to the open question: a file where none was asked for, a message
after a stopped turn, the end of the run the chat was showing."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.assistant.helpers import ScriptedLLM, Session
from tests.unit.assistant.test_conversation import to_data_choice


async def test_a_file_sent_at_a_question_that_asks_for_none_is_left_and_the_question_asked_again(tmp_path: Path):
    s = Session(ScriptedLLM(ok=False))
    q = await to_data_choice(s)
    upload = tmp_path / "stories.jsonl"
    upload.write_text('{"prompt": "a", "response": "b"}\n')
    again = await s.send({"path": str(upload), "name": "stories.jsonl"})
    assert s.said[-1] == "I'll look at files when I ask for your examples; for now, here is the question again."
    assert again is not None
    assert (again["id"], again["then"]) == (q["id"], "on_data_choice")
    assert not (await s.state()).get("data_path")


async def test_a_message_after_a_stopped_turn_answers_the_question_in_place_of_the_stopped_one():
    s = Session(ScriptedLLM(ok=False))
    q = await s.send()
    assert q is not None
    assert q["slot"] == "purpose"
    # the turn reading "the first words" was stopped halfway: the reply is in, its reading never finished
    await s.graph.aupdate_state(s.cfg, {"reply": "the first words"}, as_node="listen")
    q = await s._run({"reply": {"late": "Weekly status updates", "stopped": True}})
    assert "I stopped waiting for the assistant model and took your new message instead." in s.said
    assert (await s.state())["spec"]["purpose"] == "Weekly status updates"
    assert q is not None
    assert q["slot"] != "purpose"


async def test_a_resent_answer_after_a_failed_turn_answers_the_question_asked_last_without_a_note():
    s = Session(ScriptedLLM(ok=False))
    await s.send()
    await s.graph.aupdate_state(s.cfg, {"reply": "lost in a failure"}, as_node="listen")
    await s._run({"reply": {"late": "Weekly status updates", "stopped": False}})
    assert not any("stopped waiting" in t for t in s.said)
    assert (await s.state())["spec"]["purpose"] == "Weekly status updates"


async def test_a_message_in_a_conversation_that_never_asked_anything_starts_it():
    s = Session(ScriptedLLM(ok=False))
    q = await s._run({"reply": {"late": "hello", "stopped": False}})
    assert q is not None
    assert q["slot"] == "purpose"
    assert any("Model Training Wizard" in t for t in s.said)


def _ended_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    events = [{"type": "start", "total_steps": 8}, {"type": "step", "step": 3, "loss": 1.5},
              {"type": "stopped", "message": "stopped by the user"}]
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return folder


async def test_the_end_of_the_run_being_shown_is_read_and_its_outcome_offered(tmp_path: Path):
    s = Session(ScriptedLLM(ok=False))
    await to_data_choice(s)
    run = str(_ended_run(tmp_path / "run"))
    training = {"id": 99, "kind": "training", "text": "Training is running.", "choices": {"stop": "Stop"},
                "then": "on_training_input", "stage": "train", "run_dir": run, "effects": []}
    # the chat was showing the run; the end of it is what comes back at the training question
    await s.graph.aupdate_state(s.cfg, {"question": training, "qid": 99, "run_dir": run, "reply": {"ended": run}},
                                as_node="listen")
    q = await s.resume()
    assert q is not None
    assert q["text"].startswith("Training was stopped at step 3; its checkpoint is saved.")
    assert q["then"] == "on_after_run"
    assert (await s.state())["train_outcome"]["status"] == "stopped"


async def test_the_end_of_a_run_no_longer_waited_for_leaves_the_open_question(tmp_path: Path):
    s = Session(ScriptedLLM(ok=False))
    q = await to_data_choice(s)
    run = str(_ended_run(tmp_path / "old-run"))
    again = await s.send({"ended": run})
    assert again is not None
    assert (again["id"], again["then"]) == (q["id"], "on_data_choice")
    assert not (await s.state()).get("train_outcome")


async def test_a_reopened_conversation_that_was_never_stored_starts_again_and_says_so():
    s = Session(ScriptedLLM(ok=False))
    q = await s._run({"reply": {"reopened": True}})
    assert s.said[0] == "I could not find where this conversation left off, so let's start again."
    assert q is not None
    assert q["slot"] == "purpose"


async def test_a_reopened_conversation_with_nothing_open_asks_its_last_question_again():
    s = Session(ScriptedLLM(ok=False))
    q = await to_data_choice(s)
    again = await s._run({"reply": {"reopened": True}})
    assert again is not None
    assert (again["id"], again["then"]) == (q["id"], "on_data_choice")
    assert not any("start again" in t for t in s.said)
